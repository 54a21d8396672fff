"""Each person's desk: what they have to do, counted, with the next actions — the home page and
GET /api/v1/me/desk. A desk reads a fixed number of queries whatever the data (P6): counts are aggregated
(COUNT … GROUP BY) and the lists it shows are capped; each count has a list a person can open."""

import datetime as dt
import functools
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, case, exists, func, or_, select, true
from sqlalchemy.orm import Session, aliased, joinedload

from connectors.settings import CHANNEL_LABELS, settings_by_channel
from hub.db import UTCDateTime, driver_rows
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    Delivery,
    GpProposal,
    OutboxMessage,
    OutboxState,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    Referral,
    ReferralState,
    Report,
    ReportState,
    Role,
    SessionProgram,
    Slot,
    SlotState,
    TeleexpertiseRequest,
    Urgency,
    User,
    VisitOffer,
    VisitOfferState,
)
from hub.services import outbox_messages
from scheduling.agenda import day_bounds
from scheduling.slots import has_seat_left
from workflows import attendance, fees, gp_matching, reports, teleexpertise, waiting
from workflows.visits import PatientLine, VisitLine, visit_lists

FIRST = 5  # rows of a list a desk shows; the list behind its count has them all
LIST_LIMIT = 200  # rows of the « Visites à confirmer » page
SESSIONS_AHEAD = 8  # days of sessions on the coordinator's desk: today and up to the same weekday next week
RECENT_REPORTS = dt.timedelta(days=30)
TO_SIGN_LIMIT = 50
NOT_HELD = (AppointmentState.CANCELLED, AppointmentState.DECLINED)  # a degraded session still took place


# --- the coordinator ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdelLine:
    first_name: str
    last_name: str
    phone: str | None

    full_name = property(Professional.full_name.fget)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ProgramLine:
    name: str


@dataclass(frozen=True, slots=True)
class SlotLine:
    program: ProgramLine


@dataclass(frozen=True, slots=True)
class DeskVisit:
    """A visit as the desk's lists and « Visites à confirmer » show it: the columns they read, under the
    Appointment's names (`allows` and `appointment_state_label` read its state, kind and IDEL), not its entity with
    its patient, IDEL, slot and program (most of the coordinator's desk's loading)."""

    id: int
    state: AppointmentState
    kind: AppointmentKind
    place_kind: PlaceKind
    starts_at: dt.datetime
    accompanying_id: int | None
    declined_reason: str | None
    patient: PatientLine
    accompanying: IdelLine | None
    slot: SlotLine | None


@dataclass(frozen=True)
class WaitingVisit:
    """A visit proposed to an IDEL who has not answered: when she was asked."""

    appointment: DeskVisit
    asked_at: dt.datetime


@dataclass(frozen=True)
class VisitWithoutIdel:
    """An assisted teleconsultation nobody accompanies (declined, or widened to the territory's IDELs and not
    taken yet): how many IDELs are still asked."""

    appointment: DeskVisit
    pending_offers: int


@dataclass(frozen=True)
class SessionLoad:
    """One occurrence of a program: its slots, and how many are still free to book."""

    program_id: int
    program_name: str
    starts_at: dt.datetime
    slots: int
    free: int


@dataclass(frozen=True)
class CoordinatorDesk:
    referrals_to_triage: int
    urgent_referrals: int
    oldest_referral_at: dt.datetime | None
    referrals_to_schedule: int  # accepted, waiting for a slot
    unconfirmed: int
    oldest_unconfirmed_at: dt.datetime | None
    first_unconfirmed: list[WaitingVisit]
    without_idel: int
    first_without_idel: list[VisitWithoutIdel]
    late_reports: int
    failed_sends: int
    sessions: list[SessionLoad]
    # The messages due that the worker has not taken yet, and since when the oldest waits (the « Envois en retard »
    # warning).
    send_backlog: outbox_messages.Backlog
    # Freed slots of programs with waiting patients, to offer (workflows.waiting): the count, the soonest.
    freed_slots: int = 0
    first_freed_slots: list[waiting.TaskView] = field(default_factory=list)
    # Patients without a médecin traitant waiting on the list, and among them those proposed to no GP (issue 16).
    gp_searches: gp_matching.WaitingCounts = field(default_factory=gp_matching.WaitingCounts)
    # « À reprogrammer » (workflows.attendance): sessions a performer's or an accompanying professional's absence
    # left to book again.
    to_reschedule: int = 0
    first_to_reschedule: list[attendance.ToReschedule] = field(default_factory=list)
    first_to_reschedule_ids: list[int] = field(default_factory=list)  # the API's: without the lists, ids alone


def _unconfirmed(cpts_id: ColumnElement[int], now: ColumnElement[dt.datetime]) -> ColumnElement[bool]:
    return and_(
        Appointment.cpts_id == cpts_id,
        Appointment.state == AppointmentState.PROPOSED,
        Appointment.accompanying_id.is_not(None),
        Appointment.starts_at > now,
    )


def _without_idel(cpts_id: ColumnElement[int], now: ColumnElement[dt.datetime]) -> ColumnElement[bool]:
    return and_(
        Appointment.cpts_id == cpts_id,
        Appointment.kind == AppointmentKind.ASSISTED_TELECONSULTATION,
        Appointment.state.in_((AppointmentState.PROPOSED, AppointmentState.DECLINED)),
        Appointment.accompanying_id.is_(None),
        Appointment.starts_at > now,
    )


# The IDEL's offer of the visit, when she was asked (a visit booked with a named IDEL has one; a reassignment
# renews it); the booking time otherwise.
_ASKED_OFFER = and_(
    VisitOffer.appointment_id == Appointment.id,
    VisitOffer.professional_id == Appointment.accompanying_id,
    VisitOffer.state == VisitOfferState.PENDING,
)
_ASKED_AT = func.coalesce(VisitOffer.offered_at, Appointment.created_at)


_IDEL = aliased(Professional, name="idel")
_DESK_VISIT_COLUMNS = (
    Appointment.id,
    Appointment.state,
    Appointment.kind,
    Appointment.place_kind,
    Appointment.starts_at,
    Appointment.accompanying_id,
    Appointment.declined_reason,
    Patient.used_last_name,
    Patient.birth_name,
    Patient.used_first_name,
    Patient.first_birth_given_name,
    Patient.address,
    _IDEL.first_name,
    _IDEL.last_name,
    _IDEL.phone,
    SessionProgram.name,
)


def _desk_visits(extra) -> Select:
    """A DeskVisit's columns then `extra`, labelled c0, c1… (the driver's rows need unique names), the soonest first."""
    columns = (*_DESK_VISIT_COLUMNS, extra)
    return (
        select(*(column.label(f"c{n}") for n, column in enumerate(columns)))
        .select_from(Appointment)
        .join(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(_IDEL, _IDEL.id == Appointment.accompanying_id)
        .outerjoin(Slot, Slot.id == Appointment.slot_id)
        .outerjoin(SessionProgram, SessionProgram.id == Slot.program_id)
        .order_by(Appointment.starts_at, Appointment.id)
    )


def _desk_visit(row) -> DeskVisit:
    (id_, state, kind, place, starts_at, idel_id, declined, used_last, birth, used_first, given, address) = row[:12]
    idel_first, idel_last, idel_phone, program = row[12:16]
    return DeskVisit(
        id_, state, kind, place, starts_at, idel_id, declined,
        PatientLine(used_last, birth, used_first, given, address),
        IdelLine(idel_first, idel_last, idel_phone) if idel_id is not None else None,
        SlotLine(ProgramLine(program)) if program is not None else None,
    )  # fmt: skip


# The desk's statements are built once, with the CPTS and the time as parameters given at execution: building
# SQLAlchemy expressions anew on each request cost the desk more CPU than running its statements (a built statement
# also keeps its cache key). Those of plain columns (the counts, the sessions) are run by the driver
# (hub.db.driver_rows): SQLAlchemy's execution and result processing cost more than the statements themselves.
_CPTS = bindparam("cpts_id", type_=Integer)
_NOW = bindparam("now", type_=UTCDateTime)


@functools.cache
def _unconfirmed_statement(limit: int) -> Select:
    query = _desk_visits(_ASKED_AT).outerjoin(VisitOffer, _ASKED_OFFER).where(_unconfirmed(_CPTS, _NOW))
    return query.limit(limit)


def unconfirmed_visits(session: Session, cpts_id: int, *, now: dt.datetime, limit: int = LIST_LIMIT):
    """The CPTS's coming visits proposed to an IDEL who has not answered, the soonest first."""
    rows = driver_rows(session, _unconfirmed_statement(limit), {"cpts_id": cpts_id, "now": now})
    return [WaitingVisit(_desk_visit(row), row[-1]) for row in rows]


@functools.cache
def _without_idel_statement(limit: int) -> Select:
    pending = (
        select(VisitOffer.appointment_id, func.count().label("offers"))
        .where(VisitOffer.state == VisitOfferState.PENDING)
        .group_by(VisitOffer.appointment_id)
        .subquery()
    )
    query = (
        _desk_visits(func.coalesce(pending.c.offers, 0))
        .outerjoin(pending, pending.c.appointment_id == Appointment.id)
        .where(_without_idel(_CPTS, _NOW))
    )
    return query.limit(limit)


def visits_without_idel(session: Session, cpts_id: int, *, now: dt.datetime, limit: int = LIST_LIMIT):
    """The CPTS's coming assisted teleconsultations that no IDEL accompanies, the soonest first."""
    rows = driver_rows(session, _without_idel_statement(limit), {"cpts_id": cpts_id, "now": now})
    return [VisitWithoutIdel(_desk_visit(row), row[-1]) for row in rows]


def _visit_counts(cpts_id: ColumnElement[int], now: ColumnElement[dt.datetime]):
    """(visits waiting for their IDEL's answer, since when the oldest waits, visits without an IDEL)."""
    waiting = (
        select(func.count(Appointment.id).label("count"), func.min(_ASKED_AT).label("oldest"))
        .select_from(Appointment)
        .outerjoin(VisitOffer, _ASKED_OFFER)
        .where(_unconfirmed(cpts_id, now))
        .subquery()
    )
    without = select(func.count(Appointment.id)).where(_without_idel(cpts_id, now)).scalar_subquery()
    return select(waiting.c.count, waiting.c.oldest, without).select_from(waiting)


def _referral_counts(cpts_id: ColumnElement[int]):
    submitted = Referral.state == ReferralState.SUBMITTED
    return select(
        _count_of(submitted),
        _count_of(submitted & (Referral.urgency == Urgency.URGENT)),
        func.min(case((submitted, Referral.submitted_at))),
        _count_of(Referral.state == ReferralState.ACCEPTED),
    ).where(Referral.cpts_id == cpts_id, Referral.state.in_((ReferralState.SUBMITTED, ReferralState.ACCEPTED)))


def _failed_sends(cpts_id: ColumnElement[int]):
    dead = (OutboxMessage.cpts_id == cpts_id) & (OutboxMessage.state == OutboxState.DEAD)
    return select(func.count(OutboxMessage.id)).where(dead)


def _one_row(*queries) -> Select:
    """The single rows of aggregate queries side by side, read in one round trip: each becomes a subquery of one
    row, cross joined."""
    parts = [query.subquery() for query in queries]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, true())
    columns = [column for part in parts for column in part.c]
    # Named c0, c1…: rows are read by position, and a driver's row needs plain, unique names.
    return select(*(column.label(f"c{n}") for n, column in enumerate(columns))).select_from(joined)


@functools.cache
def _counts_statement() -> Select:
    return _one_row(
        _referral_counts(_CPTS),
        _visit_counts(_CPTS, _NOW),
        _failed_sends(_CPTS),
        waiting.open_task_count_query(_CPTS, now=_NOW),
        gp_matching.waiting_counts_query(_CPTS),
        attendance.count_to_reschedule_query(_CPTS),
        reports.late_counts_query(),
        outbox_messages.backlog_query(_CPTS, _NOW),
    )


def coordinator_desk(
    session: Session, cpts_id: int, *, zone: str, now: dt.datetime, with_lists: bool = True
) -> CoordinatorDesk:
    """The counts (in one statement), and with `with_lists` the first rows of the lists the home page shows (the
    API gives counts)."""
    (
        (to_triage, urgent, oldest_referral, to_schedule),
        (unconfirmed, oldest_unconfirmed, without),
        failed,
        freed,
        gp_waiting,
        to_reschedule,
        late_parts,
        (sends_waiting, oldest_send_due),
    ) = _split(
        driver_rows(session, _counts_statement(), {"cpts_id": cpts_id, "now": now} | reports.late_parameters(now))[0],
        (4, 3, 1, 1, 2, 1, 2, 2),
    )
    first_to_reschedule = (
        attendance.to_reschedule(session, cpts_id, now=now, limit=FIRST, with_booking=False) if with_lists else []
    )
    return CoordinatorDesk(
        referrals_to_triage=to_triage,
        urgent_referrals=urgent,
        oldest_referral_at=oldest_referral,
        referrals_to_schedule=to_schedule,
        unconfirmed=unconfirmed,
        oldest_unconfirmed_at=oldest_unconfirmed,
        first_unconfirmed=unconfirmed_visits(session, cpts_id, now=now, limit=FIRST) if with_lists else [],
        without_idel=without or 0,
        first_without_idel=visits_without_idel(session, cpts_id, now=now, limit=FIRST) if with_lists else [],
        late_reports=reports.count_unsigned(session, cpts_id, now=now) + sum(late_parts),
        failed_sends=failed[0] or 0,
        sessions=coming_sessions(session, cpts_id, zone=zone, now=now),
        freed_slots=freed[0] or 0,
        first_freed_slots=waiting.open_tasks(session, cpts_id, now=now, limit=FIRST) if with_lists else [],
        gp_searches=gp_matching.WaitingCounts(*gp_waiting),
        to_reschedule=to_reschedule[0] or 0,
        first_to_reschedule=first_to_reschedule,
        first_to_reschedule_ids=[item.appointment.id for item in first_to_reschedule]
        if with_lists
        else _first_to_reschedule_ids(session, cpts_id, to_reschedule[0]),
        send_backlog=outbox_messages.Backlog(sends_waiting or 0, oldest_send_due, now),
    )


def _first_to_reschedule_ids(session: Session, cpts_id: int, count: int | None) -> list[int]:
    # Nothing to reschedule, as on most desks (the counts statement says so): no statement for the ids.
    if not count:
        return []
    return [row[0] for row in driver_rows(session, _to_reschedule_ids_statement(), {"cpts_id": cpts_id})]


@functools.cache
def _to_reschedule_ids_statement() -> Select:
    # attendance.to_reschedule's first rows, ids alone: the API links each to GET /appointments/<id>.
    query = attendance.count_to_reschedule_query(_CPTS)
    return (
        query.with_only_columns(Appointment.id.label("id")).order_by(Appointment.starts_at, Appointment.id).limit(FIRST)
    )


def _split(row, sizes: tuple[int, ...]) -> list[tuple]:
    parts, start = [], 0
    for size in sizes:
        parts.append(tuple(row[start : start + size]))
        start += size
    return parts


def _count_of(condition) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def coming_sessions(session: Session, cpts_id: int, *, zone: str, now: dt.datetime) -> list[SessionLoad]:
    """The sessions of the CPTS's programs from today for SESSIONS_AHEAD days, each with its open slots and
    those still free to book (not held by an appointment, not past)."""
    today = fees.local_day(now, zone)
    start = day_bounds(today, zone)[0]
    end = day_bounds(today + dt.timedelta(days=SESSIONS_AHEAD - 1), zone)[1]
    rows = driver_rows(session, _sessions_statement(), {"cpts_id": cpts_id, "now": now, "start": start, "end": end})
    return [SessionLoad(*row) for row in rows]


@functools.cache
def _sessions_statement() -> Select:
    # A slot is free while it takes a participant: a group session's with seats left still counts once.
    free = func.sum(case((and_(has_seat_left(), Slot.starts_at > _NOW), 1), else_=0))
    return (
        select(
            SessionProgram.id.label("program_id"),
            SessionProgram.name.label("program_name"),
            func.min(Slot.starts_at).label("starts_at"),
            func.count(Slot.id).label("slots"),
            free.label("free"),
        )
        .select_from(Slot)
        .join(SessionProgram, SessionProgram.id == Slot.program_id)
        .where(
            SessionProgram.cpts_id == _CPTS,
            Slot.state == SlotState.OPEN,
            Slot.starts_at >= bindparam("start", type_=UTCDateTime),
            Slot.starts_at < bindparam("end", type_=UTCDateTime),
        )
        .group_by(SessionProgram.id, SessionProgram.name, Slot.occurrence_start)
        .order_by(func.min(Slot.starts_at), SessionProgram.name)
    )


# --- those who accompany: IDEL, pharmacist -----------------------------------------------------------------


@dataclass(frozen=True)
class VisitsDesk:
    """An accompanying professional's visits, as « Mes visites » reads them: offered, today's in time order,
    tomorrow's and the later confirmed ones."""

    today: dt.date
    to_confirm: list[VisitLine]
    today_visits: list[VisitLine]
    tomorrow_visits: list[VisitLine]
    later_visits: list[VisitLine]

    @property
    def tomorrow(self) -> dt.date:
        return self.today + dt.timedelta(days=1)


def visits_desk(session: Session, professional_id: int, *, zone: str, now: dt.datetime) -> VisitsDesk:
    today = fees.local_day(now, zone)
    visits = visit_lists(session, professional_id, *day_bounds(today, zone))
    tomorrow_end = day_bounds(today + dt.timedelta(days=1), zone)[1]
    return VisitsDesk(
        today=today,
        to_confirm=visits.offered,
        today_visits=visits.today,
        tomorrow_visits=[a for a in visits.upcoming if a.starts_at < tomorrow_end],
        later_visits=[a for a in visits.upcoming if a.starts_at >= tomorrow_end],
    )


@dataclass(frozen=True)
class PharmacistDesk:
    visits: VisitsDesk
    tlm: fees.BlockProgress  # the year's assistances, paid by blocks of five from the fifth, against the cap

    @property
    def year(self) -> int:
        return self.tlm.year

    @property
    def assistances(self) -> int:
        return self.tlm.acts

    @property
    def assistance_amount(self) -> Decimal:
        return self.tlm.paid


def pharmacist_desk(session: Session, pharmacist: Professional, *, zone: str, now: dt.datetime) -> PharmacistDesk:
    visits = visits_desk(session, pharmacist.id, zone=zone, now=now)
    return PharmacistDesk(
        visits=visits, tlm=fees.block_progress(session, pharmacist, fees.PHARMACY_ASSISTANCE_CODE, day=visits.today)
    )


# --- the GP -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpDesk:
    referrals: dict[ReferralState, int]  # the GP's referrals by state, in the workflow's order, states held only
    reports_received: int  # in the last RECENT_REPORTS
    recent_reports: list[Report]
    # Patients without a médecin traitant the coordination proposes, waiting for the GP's answer (issue 16).
    proposed_patients: list[GpProposal] = field(default_factory=list)
    new_patient_capacity: int = 0


def gp_desk(session: Session, professional: Professional, *, now: dt.datetime) -> GpDesk:
    counts = dict(
        session.execute(
            select(Referral.state, func.count(Referral.id))
            .where(Referral.cpts_id == professional.cpts_id, Referral.author_id == professional.id)
            .group_by(Referral.state)
        ).all()
    )
    received = and_(
        Report.cpts_id == professional.cpts_id,
        Report.state != ReportState.DRAFT,
        Report.superseded_at.is_(None),
        addressed_to(professional.id),
    )
    recent = session.scalar(select(func.count(Report.id)).where(received, Report.signed_at >= now - RECENT_REPORTS))
    latest = session.scalars(
        select(Report)
        .options(joinedload(Report.patient), joinedload(Report.author))
        .where(received)
        .order_by(Report.signed_at.desc(), Report.id.desc())
        .limit(FIRST)
    ).all()
    return GpDesk(
        referrals={state: counts[state] for state in ReferralState if state in counts},
        reports_received=recent or 0,
        recent_reports=list(latest),
        proposed_patients=gp_matching.proposals_for(session, professional),
        new_patient_capacity=professional.new_patient_capacity,
    )


def addressed_to(professional_id: int) -> ColumnElement[bool]:
    """A report the GP receives: routed to them, or about their patient (médecin traitant) or a session they
    referred, whether or not they have a secure mailbox (the hub is where they read it then)."""
    return or_(
        exists().where(Delivery.report_id == Report.id, Delivery.recipient_professional_id == professional_id),
        exists().where(Patient.id == Report.patient_id, Patient.attending_gp_id == professional_id),
        exists().where(
            Referral.appointment_id == Report.appointment_id,
            Referral.appointment_id.is_not(None),
            Referral.author_id == professional_id,
        ),
    )


# --- the performer of sessions: specialist, kiné… ---------------------------------------------------------------


@dataclass(frozen=True)
class ReportToSign:
    appointment: Appointment
    due_at: dt.datetime  # signed before its first recipient is due (reports.signature_due_at)
    is_late: bool
    has_draft: bool


@dataclass(frozen=True)
class SpecialistDesk:
    session_day: dt.date | None  # today when the professional has patients today, else their next such day
    session_patients: int
    to_sign: list[ReportToSign]
    teleexpertise_to_answer: int
    next_teleexpertise_deadline: dt.datetime | None

    @property
    def late_reports(self) -> int:
        return sum(1 for item in self.to_sign if item.is_late)


def specialist_desk(session: Session, professional: Professional, *, zone: str, now: dt.datetime) -> SpecialistDesk:
    day, patients = session_day(session, professional.id, zone=zone, now=now)
    answer, deadline = session.execute(
        select(func.count(TeleexpertiseRequest.id), func.min(TeleexpertiseRequest.deadline_at)).where(
            teleexpertise.awaiting_answer_of(professional)
        )
    ).one()
    return SpecialistDesk(
        session_day=day,
        session_patients=patients,
        to_sign=reports_to_sign(session, professional.id, now=now),
        teleexpertise_to_answer=answer,
        next_teleexpertise_deadline=deadline,
    )


def session_day(session: Session, professional_id: int, *, zone: str, now: dt.datetime) -> tuple[dt.date | None, int]:
    """The day « Ma séance » opens on: today when the professional has patients today (even those already seen),
    else their next day with patients; and how many patients that day (None, 0 when nothing is planned)."""
    mine = (Appointment.performer_id == professional_id) & Appointment.state.not_in(NOT_HELD)
    today = fees.local_day(now, zone)
    first = session.scalar(
        select(func.min(Appointment.starts_at)).where(mine, Appointment.starts_at >= day_bounds(today, zone)[0])
    )
    if first is None:
        return None, 0
    day = fees.local_day(first, zone)
    start, end = day_bounds(day, zone)
    count = session.scalar(
        select(func.count(Appointment.id)).where(mine, Appointment.starts_at >= start, Appointment.starts_at < end)
    )
    return day, count or 0


def opening_day(session: Session, professional_id: int | None, *, zone: str, now: dt.datetime) -> dt.date:
    """The day « Ma séance » opens on when none is asked: the session day, else today (nothing planned)."""
    day = session_day(session, professional_id, zone=zone, now=now)[0] if professional_id is not None else None
    return day or fees.local_day(now, zone)


def reports_to_sign(session: Session, professional_id: int, *, now: dt.datetime) -> list[ReportToSign]:
    """The sessions the professional performed that still lack a signed report (as « Comptes rendus en retard »
    counts them: a waived session of a series that went on needs none), the oldest first."""
    draft = exists().where(Report.appointment_id == Appointment.id, Report.state == ReportState.DRAFT)
    rows = session.execute(
        select(Appointment, SessionProgram, draft)
        .outerjoin(SessionProgram, SessionProgram.id == Appointment.program_id)
        .options(joinedload(Appointment.patient))
        .where(
            Appointment.performer_id == professional_id,
            *reports.awaiting_signature(),
        )
        .order_by(Appointment.ends_at, Appointment.id)
        .limit(TO_SIGN_LIMIT)
    ).all()
    items = []
    for appointment, program, has_draft in rows:
        due = reports.signature_due_at(appointment.ends_at, program)
        items.append(ReportToSign(appointment, due, due < now, bool(has_draft)))
    return items


# --- the admin ---------------------------------------------------------------------------------------------------

CONNECTOR_SETTING_LABELS = {
    "server": "Réglages du serveur",
    "cpts": "Réglages de la CPTS, activé",
    "disabled": "Désactivé pour la CPTS",
}


@dataclass(frozen=True)
class ConnectorState:
    channel: str
    label: str
    setting: str  # a key of CONNECTOR_SETTING_LABELS
    pending: int
    failed: int


@dataclass(frozen=True)
class AdminDesk:
    active_users: int
    inactive_users: int
    without_second_factor: int  # active accounts that have not enrolled their TOTP yet
    connectors: list[ConnectorState]
    failed_sends: int
    send_backlog: outbox_messages.Backlog


def admin_desk(
    session: Session, cpts_id: int, *, now: dt.datetime, send_backlog: outbox_messages.Backlog | None = None
) -> AdminDesk:
    """`send_backlog`: the CPTS's, when the coordinator's part of the same desk has read it already."""
    active, inactive, without_totp = session.execute(
        select(
            _count_of(User.is_active.is_(True)),
            _count_of(User.is_active.is_(False)),
            _count_of(User.is_active.is_(True) & User.totp_secret.is_(None)),
        ).where(User.cpts_id == cpts_id)
    ).one()
    waiting = session.execute(
        select(OutboxMessage.channel, OutboxMessage.state, func.count(OutboxMessage.id))
        .where(OutboxMessage.cpts_id == cpts_id, OutboxMessage.state.in_((OutboxState.PENDING, OutboxState.DEAD)))
        .group_by(OutboxMessage.channel, OutboxMessage.state)
    ).all()
    by_channel = {(channel, state): count for channel, state, count in waiting}
    settings = settings_by_channel(session, cpts_id)
    connectors = [
        ConnectorState(
            channel=channel,
            label=label,
            setting=_setting(settings.get(channel)),
            pending=by_channel.get((channel, OutboxState.PENDING), 0),
            failed=by_channel.get((channel, OutboxState.DEAD), 0),
        )
        for channel, label in CHANNEL_LABELS.items()
    ]
    failed = sum(count for (_channel, state), count in by_channel.items() if state is OutboxState.DEAD)
    if send_backlog is None:
        send_backlog = outbox_messages.backlog(session, cpts_id, now=now)
    return AdminDesk(active, inactive, without_totp, connectors, failed, send_backlog)


def _setting(row) -> str:
    if row is None:
        return "server"
    return "cpts" if row.is_enabled else "disabled"


# --- one person's desk ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """The parts of the desk the user's roles (and, for a professional, profession) call for."""

    coordinator: CoordinatorDesk | None = None
    idel: VisitsDesk | None = None
    pharmacist: PharmacistDesk | None = None
    gp: GpDesk | None = None
    specialist: SpecialistDesk | None = None
    admin: AdminDesk | None = None


def desk_of(session: Session, user, *, zone: str, now: dt.datetime, with_lists: bool = True) -> Desk:
    """`user`: a User or the API's `accounts.Caller` (its roles, CPTS and professional id are read). `with_lists=False`:
    the coordinator's part without the first rows of its lists (the API's counts)."""
    parts: dict = {}
    if user.has_role(Role.COORDINATOR):
        parts["coordinator"] = coordinator_desk(session, user.cpts_id, zone=zone, now=now, with_lists=with_lists)
    if user.has_role(Role.ADMIN):
        # A coordinator who is also the admin: the backlog once, from the coordinator's counts statement.
        backlog = parts["coordinator"].send_backlog if "coordinator" in parts else None
        parts["admin"] = admin_desk(session, user.cpts_id, now=now, send_backlog=backlog)
    if user.has_role(Role.PROFESSIONAL) and user.professional_id is not None:
        # By id, as the User's relationship would load it (from the session's identity map when already there).
        me = session.get(Professional, user.professional_id)
        if me is not None:
            parts |= _professional_desk(session, me, zone=zone, now=now)
    return Desk(**parts)


def _professional_desk(session: Session, me: Professional, *, zone: str, now: dt.datetime) -> dict:
    if me.profession is Profession.NURSE:
        return {"idel": visits_desk(session, me.id, zone=zone, now=now)}
    if me.profession is Profession.PHARMACIST:
        return {"pharmacist": pharmacist_desk(session, me, zone=zone, now=now)}
    if me.profession is Profession.GENERAL_PRACTITIONER:
        return {"gp": gp_desk(session, me, now=now)}
    if me.profession is Profession.COORDINATOR:
        return {}
    # Specialists, and the kinés, orthophonistes… who perform télésoin sessions and write their reports.
    return {"specialist": specialist_desk(session, me, zone=zone, now=now)}
