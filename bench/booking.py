"""P2: booking an assisted teleconsultation on PostgreSQL holding 1 M allocations, against the same rows in raw SQL.

The script builds a dedicated database (`bench_booking` by default: created through the `postgres` database if
missing, its `public` schema dropped and made again, then migrated), seeds it in SQL with `--allocations`
allocations (a quarter as many appointments, each holding its specialist, its patient, its IDEL and its kit over
three years up to the end of the 12-week horizon, spread over 400 specialists, 1,000 IDELs, up to 50,000 patients
and 40 kits), then measures, interleaved one for one:

- the hub: one session and one transaction per booking, as a request would — load the slot (with its program)
  and the patient in one SELECT and check who may book (`workflows.appointments.requested_booking`, as the booking
  endpoint and page do), `workflows.appointments.book_requested` (appointment, 3 or 4 allocations, the offer to the
  patient's own IDEL, its outbox message, the audit row), commit;
- the baseline: the same rows (appointment, allocations, visit offer, outbox message, audit row; the audit chain
  is the sequencer's, after the commit, for both) inserted with plain psycopg in one transaction per booking;
  with `--baseline rules`, after one SELECT of what the booking's rules need (RULE_READS: slot, program, kit,
  patient, eligibility, own IDEL, waiting entry) and its checks, as a plain-SQL booking that keeps them would.

Each booking uses a fresh slot, patient and IDEL; the slots belong to 8 programs whose specialists and kits
(half the programs have a kit: 4 allocations, else 3) are seeded ones, with their whole history in the table.
The hub and the baseline book pairs of slots of the same shape, and take turns going first.

    .venv/bin/python bench/booking.py                          # 1 M allocations, 300 bookings each way
    .venv/bin/python bench/booking.py --allocations 20000 --bookings 100     # a quick run

Goal (docs/guarantees.md, P2): the hub's booking takes at most 2x the baseline's time, mean and p95.
"""

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from sqlalchemy import event, func, make_url, select, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

from bench.common import prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from hub import audit, migrate  # noqa: E402
from hub.db import make_engine, make_session_factory, session_scope, utcnow  # noqa: E402
from hub.models import (  # noqa: E402
    Allocation,
    AuditEvent,
    Organisation,
    OutboxMessage,
    PlaceKind,
    Profession,
    Professional,
    Resource,
    ResourceKind,
    Role,
    User,
    VisitOffer,
)
from tests import factories  # noqa: E402
from workflows import appointments  # noqa: E402

GOAL = 2.0
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_booking"
PERFORMERS = 400
IDELS = 1_000
KITS = 40
MAX_PATIENTS = 50_000
HISTORY = dt.timedelta(days=3 * 365)
HORIZON = dt.timedelta(weeks=12)
PROGRAMS = 8
SLOT_SPACING = dt.timedelta(minutes=90)  # wider than the IDEL's and the kit's window: no self-conflict
WINDOW = dt.timedelta(minutes=60)  # 20 min before the 15-min consultation, 25 min after
WARMUP = 20


# --------------------------------------------------------------------------------------------------------------
# Database and seed


def raw_connect(url: str) -> psycopg.Connection:
    target = make_url(url)
    return psycopg.connect(
        host=target.host or "127.0.0.1",
        port=target.port or 5432,
        user=target.username or "postgres",
        password=target.password,
        dbname=target.database,
        autocommit=True,
    )


@dataclass
class Seed:
    cpts_id: int
    user_id: int
    appointments: int
    allocations: int
    horizon_end: dt.datetime
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


# The allocation table's indexes and exclusion constraint, exactly as the migration makes them: dropped for the
# bulk load and built again once at the end (one sorted build instead of a million insertions).
ALLOCATION_INDEXES = (
    ("ex_allocations_no_overlap", "ALTER TABLE allocations DROP CONSTRAINT ex_allocations_no_overlap"),
    ("ix_allocations_resource_time", "DROP INDEX ix_allocations_resource_time"),
    ("ix_allocations_appointment_id", "DROP INDEX ix_allocations_appointment_id"),
)
ALLOCATION_REBUILD = (
    "CREATE INDEX ix_allocations_appointment_id ON allocations (appointment_id)",
    "CREATE INDEX ix_allocations_resource_time ON allocations (resource_kind, resource_id, starts_at)",
    "ALTER TABLE allocations ADD CONSTRAINT ex_allocations_no_overlap EXCLUDE USING gist "
    "(resource_kind WITH =, resource_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)",
)

SEED_PROFESSIONALS = """
INSERT INTO professionals (cpts_id, rpps, last_name, first_name, profession, specialty, email, commune_insee,
                           served_communes, does_telesoin, accompanies_teleconsultation, is_active, created_at)
SELECT %(cpts)s, %(prefix)s || lpad(g::text, 10, '0'), %(name)s || g, 'Banc', %(profession)s, %(specialty)s,
       'pro' || %(prefix)s || g || '@example.org', '24322', '', false, %(accompanies)s, true, now()
FROM generate_series(1, %(count)s) AS g
"""
SEED_PATIENTS = """
INSERT INTO patients (cpts_id, birth_name, first_birth_given_name, birth_date, sex, birth_place_insee,
                      identity_status, commune_insee, created_at, updated_at)
SELECT %(cpts)s, 'BANC' || g, 'MARIE', date '1940-01-01' + (g %% 25000), 'F', '24322', 'PROV', '24322', now(), now()
FROM generate_series(1, %(count)s) AS g
"""
SEED_KITS = """
INSERT INTO resources (cpts_id, kind, name, is_active)
SELECT %(cpts)s, 'kit', 'Mallette ECG ' || g, true FROM generate_series(1, %(count)s) AS g
"""
# Appointment i starts at first + i * step; its specialist, IDEL, patient and kit are taken in turn (i modulo
# their number), so that one resource's allocations are at least (number of that resource) * step apart.
SEED_APPOINTMENTS = """
INSERT INTO appointments (cpts_id, kind, state, patient_id, performer_id, accompanying_id, place_kind, starts_at,
                          ends_at, accompaniment_starts_at, accompaniment_ends_at, kit_id, sequence,
                          created_by_user_id, created_at, updated_at, is_late_cancellation, checklist)
SELECT %(cpts)s, 'assisted_teleconsultation', CASE WHEN s < now() THEN 'done' ELSE 'confirmed' END,
       %(patient0)s + i %% %(patients)s, %(performer0)s + i %% %(performers)s, %(idel0)s + i %% %(idels)s,
       'lieu_dedie', s, s + interval '15 minutes', s - interval '20 minutes', s + interval '40 minutes',
       %(kit0)s + i %% %(kits)s, 1, %(user)s, s - interval '7 days', s - interval '7 days', false, '{}'
FROM (SELECT i, %(first)s + i * %(step)s * interval '1 second' AS s
      FROM generate_series(0, %(count)s - 1) AS i) AS t
"""
SEED_ALLOCATIONS = """
INSERT INTO allocations (appointment_id, resource_kind, resource_id, starts_at, ends_at)
SELECT id, 'professional', performer_id, starts_at, ends_at FROM appointments
UNION ALL SELECT id, 'patient', patient_id, accompaniment_starts_at, accompaniment_ends_at FROM appointments
UNION ALL SELECT id, 'professional', accompanying_id, accompaniment_starts_at, accompaniment_ends_at FROM appointments
UNION ALL SELECT id, 'kit', kit_id, accompaniment_starts_at, accompaniment_ends_at FROM appointments
"""


def contiguous_ids(cursor, query: str, params: dict) -> int:
    """The first id of rows just inserted by one statement; they must be contiguous for the seed's arithmetic."""
    cursor.execute(query, params)
    first, last, count = cursor.fetchone()
    if last - first + 1 != count:
        raise RuntimeError(f"ids not contiguous: {query!r}")
    return first


def seed(url: str, allocations: int) -> Seed:
    """Migrate, then the CPTS and its coordinator through the ORM, and everything else in SQL."""
    began = time.perf_counter()
    steps: dict[str, float] = {}
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            cpts = factories.cpts(session, "CPTS banc P2")
            coordinator = factories.user(session, cpts, Role.COORDINATOR)
            cpts_id, user_id = cpts.id, coordinator.id
    finally:
        engine.dispose()
    steps["migrate + CPTS"] = time.perf_counter() - began

    count = allocations // 4
    patients = min(MAX_PATIENTS, max(1_000, count // 5))
    horizon_end = (utcnow() + HORIZON).replace(minute=0, second=0, microsecond=0)
    first = horizon_end - HISTORY
    step = int(HISTORY.total_seconds()) // max(count, 1)
    if min(KITS, PERFORMERS, IDELS, patients) * step < WINDOW.total_seconds() + 1200:
        raise SystemExit(f"--allocations {allocations} is too many for the seed's spacing (at most ~4 M)")

    with raw_connect(url) as connection, connection.cursor() as cursor:
        mark = time.perf_counter()
        with connection.transaction():
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            cursor.execute("SET LOCAL synchronous_commit = off")
            common = {"cpts": cpts_id, "accompanies": False, "specialty": None}
            cursor.execute(
                SEED_PROFESSIONALS,
                common
                | {
                    "prefix": "8",
                    "name": "CARDIOLOGUE",
                    "profession": "medecin_specialiste",
                    "specialty": "Cardiologie",
                    "count": PERFORMERS,
                },
            )
            cursor.execute(
                SEED_PROFESSIONALS,
                common
                | {"prefix": "7", "name": "INFIRMIER", "profession": "infirmier", "accompanies": True}
                | {"count": IDELS},
            )
            cursor.execute(SEED_PATIENTS, {"cpts": cpts_id, "count": patients})
            cursor.execute(SEED_KITS, {"cpts": cpts_id, "count": KITS})
            ids_of = "SELECT min(id), max(id), count(*) FROM {} WHERE cpts_id = %(cpts)s{}"
            refs = {
                "performer0": contiguous_ids(
                    cursor, ids_of.format("professionals", " AND profession = 'medecin_specialiste'"), common
                ),
                "idel0": contiguous_ids(
                    cursor, ids_of.format("professionals", " AND profession = 'infirmier'"), common
                ),
                "patient0": contiguous_ids(cursor, ids_of.format("patients", ""), common),
                "kit0": contiguous_ids(cursor, ids_of.format("resources", " AND kind = 'kit'"), common),
            }
            steps["professionals, patients, kits"] = time.perf_counter() - mark

            mark = time.perf_counter()
            cursor.execute(
                SEED_APPOINTMENTS,
                refs
                | {
                    "cpts": cpts_id,
                    "user": user_id,
                    "performers": PERFORMERS,
                    "idels": IDELS,
                    "patients": patients,
                    "kits": KITS,
                    "first": first,
                    "step": step,
                    "count": count,
                },
            )
            steps[f"{count:,} appointments"] = time.perf_counter() - mark

            mark = time.perf_counter()
            for _name, drop in ALLOCATION_INDEXES:
                cursor.execute(drop)
            cursor.execute(SEED_ALLOCATIONS)
            inserted = cursor.rowcount
            steps[f"{inserted:,} allocations (no index)"] = time.perf_counter() - mark
            for statement in ALLOCATION_REBUILD:
                mark = time.perf_counter()
                cursor.execute(statement)
                name = re.search(r"(ix_\w+|ex_\w+)", statement).group(1)
                steps[f"build {name}"] = time.perf_counter() - mark
        mark = time.perf_counter()
        cursor.execute("VACUUM (ANALYZE) appointments, allocations, patients, professionals, resources")
        steps["VACUUM ANALYZE"] = time.perf_counter() - mark
    return Seed(cpts_id, user_id, count, inserted, horizon_end, time.perf_counter() - began, steps)


def existing_seed(url: str) -> Seed | None:
    """The seed left by an earlier run (--reuse-seed), brought up to the latest migration; None if there is none.
    Its new slots start after everything already booked, so that earlier runs' bookings do not collide."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT o.id, min(u.id) FROM organisations o JOIN users u ON u.cpts_id = o.id "
                    "WHERE o.name = 'CPTS banc P2' GROUP BY o.id"
                )
            ).first()
            if row is None:
                return None
            appointment_count = connection.scalar(text("SELECT count(*) FROM appointments"))
            allocation_count = connection.scalar(text("SELECT count(*) FROM allocations"))
            last = connection.scalar(text("SELECT max(ends_at) FROM allocations"))
    except DBAPIError:  # no database yet: seed afresh
        return None
    finally:
        engine.dispose()
    if not allocation_count:
        return None
    horizon_end = last.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return Seed(row[0], row[1], appointment_count, allocation_count, horizon_end, 0.0, {"reused": 0.0})


# --------------------------------------------------------------------------------------------------------------
# Bookings to make


@dataclass(frozen=True)
class Booking:
    slot_id: int
    patient_id: int
    idel_id: int
    idel_email: str
    program_id: int
    performer_id: int
    kit_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime


def prepare_bookings(url: str, seed_row: Seed, count: int) -> list[Booking]:
    """`count` fresh slots after the seeded horizon, each with a fresh consenting patient and their own IDEL."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            cpts = session.get(Organisation, seed_row.cpts_id)
            coordinator = session.get(User, seed_row.user_id)
            performers = session.scalars(
                select(Professional)
                .where(Professional.cpts_id == cpts.id, Professional.profession == Profession.SPECIALIST)
                .order_by(Professional.id)
                .limit(PROGRAMS)
            ).all()
            kits = session.scalars(
                select(Resource.id).where(Resource.kind == ResourceKind.KIT).order_by(Resource.id).limit(PROGRAMS)
            ).all()
            programs = [
                factories.program(
                    session,
                    cpts,
                    performer=performer,
                    name=f"Téléconsultation banc {j}",
                    kit_id=kits[j] if (j // 2) % 2 == 0 else None,  # bookings 2i and 2i + 1 alike
                )
                for j, performer in enumerate(performers)
            ]
            first = seed_row.horizon_end + dt.timedelta(days=1)
            # Unique RPPS numbers across runs on a reused seed (the factories' counter restarts with each process).
            rpps_base = session.scalar(select(func.max(Professional.id)))
            bookings = []
            for b in range(count):
                program = programs[b % len(programs)]
                starts_at = first + (b // len(programs)) * SLOT_SPACING
                slot = factories.slot(session, program, starts_at)
                patient = factories.consenting_patient(session, cpts, recorded_by=coordinator, commune_insee="24322")
                idel = factories.professional(
                    session,
                    cpts,
                    Profession.NURSE,
                    commune_insee="24322",
                    accompanies_teleconsultation=True,
                    email=f"idel-banc-{b}@example.org",
                    rpps=f"6{rpps_base + b:010d}",
                )
                factories.in_care_team(session, patient, idel)
                bookings.append(
                    Booking(
                        slot.id,
                        patient.id,
                        idel.id,
                        idel.email,
                        program.id,
                        program.performer_id,
                        program.kit_id,
                        slot.starts_at,
                        slot.ends_at,
                    )
                )
        return bookings
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------------------
# The two ways of booking


class StatementLog:
    """Counts and times the statements sent through the engine (pool pre-pings bypass cursor events)."""

    def __init__(self, engine):
        self.active = False
        self.count = 0
        self.seconds = defaultdict(float)
        self.calls = Counter()
        self.last: list[str] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self.active:
            self.count += 1
            self.last.append(statement)
            conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        # Keyed by the statement's text, labelled once at the end (labelled() below): the label's regular
        # expressions cost the hub's side about 0.1 ms of CPU per statement when they ran here.
        if self.active and "bench_t0" in conn.info:
            self.seconds[statement] += time.perf_counter() - conn.info.pop("bench_t0")
            self.calls[statement] += 1

    def labelled(self) -> dict[str, tuple[int, float]]:
        """(calls, seconds) by statement_label."""
        totals: dict[str, tuple[int, float]] = {}
        for statement, calls in self.calls.items():
            label = statement_label(statement)
            before = totals.get(label, (0, 0.0))
            totals[label] = (before[0] + calls, before[1] + self.seconds[statement])
        return totals


def statement_label(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return verb if verb != "RELEASE" else "RELEASE SAVEPOINT"
    if "pg_advisory_xact_lock" in statement:
        return "SELECT pg_advisory_xact_lock"
    if verb == "WITH":  # rows inserted together (hub.db.insert_together): every table, in order
        return "INSERT " + " + ".join(re.findall(r"\bINSERT INTO (\w+)", statement))
    target = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement, re.IGNORECASE)
    return f"{verb} {target.group(1) if target else ''}".strip()


def hub_booking(factory, actor, booking: Booking, log: StatementLog) -> tuple[float, int, tuple[float, ...]]:
    """One request's worth: a session, the slot and the patient by id, book(), commit. Returns the time, the
    number of statements and the time of each phase (load, book, commit and close) and the process's CPU time."""
    log.count, log.last = 0, []
    began, cpu = time.perf_counter(), time.process_time()
    session = factory()
    try:
        # As the endpoint (POST /api/v1/appointments): the slot with its program, the patient and the rules' facts
        # in one SELECT, and who may book the patient (a coordinator: no query); then book()'s rules and writes.
        inputs = appointments.requested_booking(session, actor, slot_id=booking.slot_id, patient_id=booking.patient_id)
        loaded = time.perf_counter()
        appointments.book_requested(
            session, actor, inputs, place_kind=PlaceKind.DEDICATED_PLACE, accompanying_id=None, telesoin=None
        )
        booked = time.perf_counter()
        session.commit()
    finally:
        session.close()
    ended = time.perf_counter()
    return ended - began, log.count, (loaded - began, booked - loaded, ended - booked, time.process_time() - cpu)


INSERT_APPOINTMENT = """
INSERT INTO appointments (cpts_id, kind, state, patient_id, slot_id, program_id, performer_id, accompanying_id,
                          place_kind, starts_at, ends_at, accompaniment_starts_at, accompaniment_ends_at, room_id,
                          kit_id, sequence, created_by_user_id, created_at, updated_at, is_late_cancellation,
                          checklist)
VALUES (%s, 'assisted_teleconsultation', 'proposed', %s, %s, %s, %s, %s, 'lieu_dedie', %s, %s, %s, %s, NULL, %s,
        0, %s, %s, %s, false, '{}')
RETURNING id
"""
INSERT_ALLOCATION_ROW = "(%s, %s, %s, %s, %s)"
INSERT_ALLOCATIONS = "INSERT INTO allocations (appointment_id, resource_kind, resource_id, starts_at, ends_at) VALUES "
INSERT_OFFER = """
INSERT INTO visit_offers (appointment_id, professional_id, round, state, offered_at, expires_at)
VALUES (%s, %s, 1, 'pending', %s, %s)
"""
INSERT_OUTBOX = """
INSERT INTO outbox_messages (cpts_id, idempotency_key, channel, recipient, kind, payload, state, attempts,
                             max_attempts, next_attempt_at, created_at)
VALUES (%s, %s, 'email', %s, 'visit_offered', %s, 'pending', 0, 8, %s, %s)
"""
INSERT_AUDIT = """
INSERT INTO audit_events (occurred_at, actor_user_id, actor_label, action, outcome, target_type, target_id,
                          cpts_id, request_id, ip, details)
VALUES (%s, %s, %s, 'appointment.book', 'success', 'appointments', %s, %s, NULL, NULL, '{}')
"""


# What a booking in plain SQL that keeps the rules must read first, in one round trip: the slot open and to come,
# its program active and of the patient's CPTS, its kit not retired, the patient's latest eligibility for an
# assisted teleconsultation, their own IDEL (who is offered the visit, and her e-mail) and their waiting entry.
RULE_READS = """
SELECT s.state, s.starts_at, p.is_active, p.cpts_id, k.is_active, pa.cpts_id,
       (SELECT e.outcome FROM eligibility_assessments e
         WHERE e.patient_id = pa.id AND e.modality = 'assisted_teleconsultation'
         ORDER BY e.assessed_at DESC, e.id DESC LIMIT 1),
       idel.id, idel.email,
       EXISTS (SELECT 1 FROM waiting_entries w WHERE w.patient_id = pa.id AND w.program_id = p.id
                  AND w.state = 'waiting')
FROM slots s
JOIN session_programs p ON p.id = s.program_id
LEFT JOIN resources k ON k.id = p.kit_id
JOIN patients pa ON pa.id = %(patient)s
LEFT JOIN LATERAL (SELECT pr.id, pr.email FROM care_team_members c JOIN professionals pr ON pr.id = c.professional_id
                    WHERE c.patient_id = pa.id AND pr.profession = 'infirmier' AND pr.is_active
                    ORDER BY c.added_at LIMIT 1) idel ON true
WHERE s.id = %(slot)s
"""


def read_rules(cursor, booking: Booking, now: dt.datetime) -> tuple[int, str]:
    """The rule reads of a plain-SQL booking (RULE_READS) and their checks; the own IDEL's id and e-mail."""
    cursor.execute(RULE_READS, {"patient": booking.patient_id, "slot": booking.slot_id})
    state, starts_at, active, cpts_id, kit_active, patient_cpts, outcome, idel_id, idel_email, waiting = (
        cursor.fetchone()
    )
    allowed = state == "open" and starts_at > now and active and kit_active is not False and cpts_id == patient_cpts
    if not allowed or outcome not in ("eligible", "assisted") or idel_id is None or waiting:
        raise AssertionError(f"the bench's booking {booking} breaks a rule")
    return idel_id, idel_email


def raw_booking(connection, seed_row: Seed, actor_login: str, booking: Booking, *, rule_reads: bool) -> float:
    """The same rows in plain SQL, one transaction; with `rule_reads`, after the one SELECT of RULE_READS."""
    with connection.cursor() as cursor:
        began = time.perf_counter()
        now = utcnow()
        window = (booking.starts_at - dt.timedelta(minutes=20), booking.ends_at + dt.timedelta(minutes=25))
        with connection.transaction():
            if rule_reads:
                idel_id, idel_email = read_rules(cursor, booking, now)
                booking = replace(booking, idel_id=idel_id, idel_email=idel_email)
            cursor.execute(
                INSERT_APPOINTMENT,
                (
                    seed_row.cpts_id,
                    booking.patient_id,
                    booking.slot_id,
                    booking.program_id,
                    booking.performer_id,
                    booking.idel_id,
                    booking.starts_at,
                    booking.ends_at,
                    *window,
                    booking.kit_id,
                    seed_row.user_id,
                    now,
                    now,
                ),
            )
            appointment_id = cursor.fetchone()[0]
            holds = [
                ("professional", booking.performer_id, booking.starts_at, booking.ends_at),
                ("patient", booking.patient_id, *window),
                ("professional", booking.idel_id, *window),
            ]
            if booking.kit_id is not None:
                holds.append(("kit", booking.kit_id, *window))
            cursor.execute(
                INSERT_ALLOCATIONS + ", ".join([INSERT_ALLOCATION_ROW] * len(holds)),
                [value for hold in holds for value in (appointment_id, *hold)],
            )
            cursor.execute(INSERT_OFFER, (appointment_id, booking.idel_id, now, now + dt.timedelta(hours=2)))
            cursor.execute(
                INSERT_OUTBOX,
                (
                    seed_row.cpts_id,
                    f"visit_offered:offer:{appointment_id}:{booking.idel_id}:0",
                    booking.idel_email,
                    f'{{"appointment_id": {appointment_id}, "professional_id": {booking.idel_id}}}',
                    now,
                    now,
                ),
            )
            cursor.execute(INSERT_AUDIT, (now, seed_row.user_id, actor_login, str(appointment_id), seed_row.cpts_id))
        return time.perf_counter() - began


# --------------------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)

    def mean(self) -> float:
        return statistics.fmean(self.seconds) * 1000

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def count_rows(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def measure(
    url: str, seed_row: Seed, bookings: list[Booking], warmup: int, *, rule_reads: bool
) -> tuple[Series, Series, dict]:
    engine = make_engine(url)
    log = StatementLog(engine)
    factory = make_session_factory(engine)
    hub, raw = Series(), Series()
    query_counts: Counter = Counter()
    phases: list[tuple[float, ...]] = []
    try:
        with factory() as session:
            actor = session.get(User, seed_row.user_id)
            before = {m: count_rows(session, m) for m in (Allocation, VisitOffer, OutboxMessage, AuditEvent)}
        with raw_connect(url) as connection:
            pairs = [(bookings[2 * i], bookings[2 * i + 1]) for i in range(len(bookings) // 2)]
            for i, (mine, theirs) in enumerate(pairs):
                measuring = i >= warmup
                log.active = measuring

                def run_hub(booking=mine, measuring=measuring):
                    seconds, queries, parts = hub_booking(factory, actor, booking, log)
                    if measuring:
                        hub.seconds.append(seconds)
                        query_counts[queries] += 1
                        phases.append(parts)

                def run_raw(booking=theirs, measuring=measuring):
                    seconds = raw_booking(connection, seed_row, actor.login, booking, rule_reads=rule_reads)
                    if measuring:
                        raw.seconds.append(seconds)

                # Alternate which goes first, so that neither always follows the other.
                order = (run_hub, run_raw) if i % 2 == 0 else (run_raw, run_hub)
                for run in order:
                    run()
            log.active = False
            statements = list(log.last)
        breaks = audit.seal_and_verify(factory, key=audit.DEVELOPMENT_KEY)[1].breaks
        with factory() as session:
            after = {m: count_rows(session, m) for m in before}
    finally:
        engine.dispose()
    expected_allocations = sum(4 if b.kit_id else 3 for b in bookings)
    done = 2 * len(pairs)
    checks = {
        "allocations": (after[Allocation] - before[Allocation], expected_allocations),
        "visit offers": (after[VisitOffer] - before[VisitOffer], done),
        "outbox messages": (after[OutboxMessage] - before[OutboxMessage], done),
        "audit rows": (after[AuditEvent] - before[AuditEvent], done),
    }
    details = {
        "checks": checks,
        "chain_breaks": breaks,
        "query_counts": query_counts,
        "statements": statements,
        "phases": [statistics.fmean(column) * 1000 for column in zip(*phases, strict=True)],
        "per_statement": {
            label: (calls / len(hub.seconds), seconds / len(hub.seconds) * 1000)
            for label, (calls, seconds) in log.labelled().items()
        },
    }
    return hub, raw, details


CONFLICT_QUERIES = {
    # find_conflict's shape: each hold's resource, and "starts before my end, ends after my start".
    "find_conflict's query (b-tree ix_allocations_resource_time)": (
        "SELECT resource_kind, resource_id, starts_at, ends_at FROM allocations "
        "WHERE (resource_kind = 'professional' AND resource_id = %(p)s::integer "
        "AND starts_at < %(e)s AND ends_at > %(s)s) "
        "OR (resource_kind = 'kit' AND resource_id = %(k)s::integer AND starts_at < %(we)s AND ends_at > %(ws)s)"
    ),
    # The same question as the exclusion constraint asks it, which its GiST index answers.
    "the same question as ranges (GiST ex_allocations_no_overlap)": (
        "SELECT resource_kind, resource_id, starts_at, ends_at FROM allocations "
        "WHERE (resource_kind = 'professional' AND resource_id = %(p)s::integer "
        "AND tstzrange(starts_at, ends_at, '[)') && tstzrange(%(s)s, %(e)s, '[)')) "
        "OR (resource_kind = 'kit' AND resource_id = %(k)s::integer "
        "AND tstzrange(starts_at, ends_at, '[)') && tstzrange(%(ws)s, %(we)s, '[)'))"
    ),
}


def explain_conflict_queries(url: str, bookings: list[Booking]) -> list[tuple[str, str]]:
    """EXPLAIN ANALYZE of the conflict check for the last kit booking (the kit is the resource with the longest
    history: one allocation in 40 of the seed), as find_conflict writes it and as ranges."""
    booking = next((b for b in reversed(bookings) if b.kit_id), bookings[-1])
    window = (booking.starts_at - dt.timedelta(minutes=20), booking.ends_at + dt.timedelta(minutes=25))
    params = {"p": booking.performer_id, "s": booking.starts_at, "e": booking.ends_at, "k": booking.kit_id}
    params |= {"ws": window[0], "we": window[1]}
    plans = []
    with raw_connect(url) as connection, connection.cursor() as cursor:
        for title, query in CONFLICT_QUERIES.items():
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) " + query, params)
            plans.append((title, "\n".join(f"    {row[0]}" for row in cursor.fetchall())))
    return plans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=1_000_000, help="seeded allocations (default 1,000,000)")
    parser.add_argument("--bookings", type=int, default=300, help="measured bookings each way (default 300)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"unmeasured pairs first (default {WARMUP})")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--show-queries", action="store_true", help="print the statements of the last booking")
    parser.add_argument(
        "--reuse-seed", action="store_true", help="measure on the database an earlier run seeded, if there is one"
    )
    parser.add_argument(
        "--baseline",
        choices=("inserts", "rules"),
        default="inserts",
        help="inserts: the baseline is handed every id and only inserts (the goal's baseline until 2026-12-04); "
        "rules: it first reads, in one SELECT, what the booking's rules need (RULE_READS) and checks it",
    )
    args = parser.parse_args(argv)
    if not args.pg_url.startswith("postgresql"):
        parser.error("P2 is measured on PostgreSQL")

    load_before = os.getloadavg()[0]
    print(f"=== P2 on {args.pg_url}", flush=True)
    seed_row = existing_seed(args.pg_url) if args.reuse_seed else None
    if seed_row is not None:
        print(f"reusing the seed of an earlier run: {seed_row.allocations:,} allocations", flush=True)
    else:
        prepare_postgresql(args.pg_url)
        seed_row = seed(args.pg_url, args.allocations)
        print(
            f"seeded {seed_row.allocations:,} allocations for {seed_row.appointments:,} appointments in "
            f"{seed_row.seconds:.1f} s",
            flush=True,
        )
        for step, seconds in seed_row.steps.items():
            print(f"  {step:<40} {seconds:7.1f} s")

    total = 2 * (args.warmup + args.bookings)
    mark = time.perf_counter()
    bookings = prepare_bookings(args.pg_url, seed_row, total)
    print(f"prepared {total} fresh slots, patients and IDELs in {time.perf_counter() - mark:.1f} s", flush=True)

    mark = time.perf_counter()
    hub, raw, details = measure(args.pg_url, seed_row, bookings, args.warmup, rule_reads=args.baseline == "rules")
    print(f"measured in {time.perf_counter() - mark:.1f} s ({args.warmup} pairs of warm-up first)\n")

    valid = True
    for name, (got, expected) in details["checks"].items():
        ok = got == expected
        valid &= ok
        print(f"  {name:<16} written {got}, expected {expected}: {'ok' if ok else 'MISMATCH (bug)'}")
    chain = "intact" if not details["chain_breaks"] else f"BROKEN {details['chain_breaks'][:3]}"
    valid &= not details["chain_breaks"]
    print(f"  audit chain {chain}")

    counts = details["query_counts"]
    constant = "constant" if len(counts) == 1 else "NOT constant"
    shown = ", ".join(f"{n} statements x {times}" for n, times in sorted(counts.items()))
    print(f"\nqueries per hub booking: {shown} ({constant})")
    print("the hub booking's statements, per booking (count, mean ms):")
    for label, (calls, ms) in sorted(details["per_statement"].items(), key=lambda item: -item[1][1]):
        print(f"  {label:<32} {calls:4.1f}  {ms:6.2f} ms")
    db_ms = sum(ms for _calls, ms in details["per_statement"].values())
    print(f"  {'statements (excl. BEGIN/COMMIT)':<32}       {db_ms:6.2f} ms of {hub.mean():.2f} ms mean")
    if args.show_queries:
        print("\nstatements of the last measured booking:")
        for statement in details["statements"]:
            print("  " + " ".join(statement.split())[:200])
    load, book, commit, cpu = details["phases"]
    print(f"  phases: load slot + patient {load:.2f} ms, book() {book:.2f} ms, commit + close {commit:.2f} ms")
    print(f"  process CPU per hub booking (time.process_time): {cpu:.2f} ms")
    for title, plan in explain_conflict_queries(args.pg_url, bookings):
        print(f"\nconflict check for a kit booking, {title}:")
        print(plan)

    ratio_mean = hub.mean() / raw.mean()
    ratio_p95 = hub.percentile(0.95) / raw.percentile(0.95)
    verdict = "pass" if max(ratio_mean, ratio_p95) <= GOAL else "fail"
    print(
        f"\nP2 summary ({dt.date.today().isoformat()}, {os.cpu_count()} cores, "  # noqa: DTZ011
        f"{seed_row.allocations:,} allocations, "
        f"{'seed reused' if 'reused' in seed_row.steps else f'seeded in {seed_row.seconds:.0f} s'}, "
        f"{len(hub.seconds)} bookings each way, baseline: {args.baseline})"
    )
    rows = [("", "mean ms", "p50 ms", "p95 ms")]
    for label, series in (("hub book() + commit", hub), ("raw SQL baseline", raw)):
        rows.append((label, f"{series.mean():.2f}", f"{series.percentile(0.5):.2f}", f"{series.percentile(0.95):.2f}"))
    rows.append(("ratio", f"{ratio_mean:.2f}", f"{hub.percentile(0.5) / raw.percentile(0.5):.2f}", f"{ratio_p95:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    print(f"goal: ≤ {GOAL:g}x, mean and p95: {verdict}")
    print(f"load average (1 min) before the run: {load_before:.2f}; other processes on the machine skew the figures")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
