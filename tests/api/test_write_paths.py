"""The write paths in a few statements (issue 17, item 2): a booking, the IDEL's confirmation and the referral's
submission, counted on the real database (SQLite or PostgreSQL) with no lazy load; a booking's conflict named from
what the database refused, with no SELECT of the allocations first on PostgreSQL and no partial hold left behind.

The audit write and the test transaction's savepoints are left out of the counts (tests.api.test_hot_paths)."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, update

from hub.auth.policies import appointment_for
from hub.db import utcnow
from hub.http.request import db
from hub.models import (
    BOOKED_IN_HUB,
    BOOKED_THROUGH_SAS,
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentKind,
    AppointmentState,
    AuditEvent,
    OutboxMessage,
    OutboxState,
    PlaceKind,
    Report,
    ResourceKind,
    Role,
    TelesoinActCode,
    VisitOffer,
    VisitOfferState,
    WaitingState,
    WaitingUrgency,
)
from hub.schemas.scheduling import AppointmentIn, AppointmentOut, appointment_entity_out
from hub.services import accounts, fhir
from scheduling.bookings import BookingConflict
from tests import factories
from tests.api.test_referrals_api import PARIS, create, hub  # noqa: F401 (hub: the referral fixture)
from tests.queries import (
    audit_inserts,
    count_queries,
    forbid_flushes,
    forbid_lazy_loads,
    orm_executions,
    statements_on,
)
from workflows import appointments, reports, sas, waiting


def label(statement: str) -> str:
    """`SELECT professionals`, `INSERT allocations`, `UPDATE waiting_entries`: the verb and its first table."""
    verb = statement.split()[0].upper()
    if verb == "WITH":  # data-modifying CTEs: every table written, in order
        return " ".join(["WITH", *re.findall(r"\b(?:INSERT INTO|UPDATE) (\w+)", statement)])
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else ''}".strip()


SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")  # the test transaction's


def audited_update(engine, table: str) -> str:
    """The label of a state change's UPDATE: on PostgreSQL its audit row inserted by the same statement (a
    data-modifying CTE, hub.audit.take_queued), elsewhere the UPDATE alone, the audit row an INSERT at commit."""
    return f"WITH audit_events {table}" if engine.dialect.name == "postgresql" else f"UPDATE {table}"


def _first_use(api, url):
    # The token's first use stamps last_used_at (not the steady state). A refused request keeps that stamp on
    # PostgreSQL when its view runs without a transaction (a light read, a single write: committed on its own).
    assert api.get(url).status_code == 200


def test_a_booking_reads_once_and_writes_in_one_statement_on_postgresql(clock, api_as, engine, territory, slot):
    """Besides the token: one read of the slot, the patient and the rules' facts; then (PostgreSQL) the appointment,
    its holds, its offer, the IDEL's e-mail and the audit row in one statement. It was eight statements and the audit
    INSERT at commit before 2026-12-04 (branch hb-p2b), then the appointment and its holds apart (branch hc-booking),
    then the offer, e-mail and audit row a second statement (until branch hm-p2)."""
    api = api_as(territory.coordinator)
    _first_use(api, f"/api/v1/patients/{territory.patient.id}")
    booking = {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    with forbid_lazy_loads(), count_queries(engine) as seen:
        response = api.post("/api/v1/appointments", json=booking)
    assert response.status_code == 201, response.get_json()
    seen = [" ".join(statement.split()) for statement in seen if not statement.startswith(SAVEPOINTS)]
    labels = [label(statement) for statement in seen]
    # PostgreSQL: the holds' INSERT a data-modifying CTE of the appointment's, the exclusion constraint the check,
    # the last three rows three more, selected from the appointment's. SQLite: it checks the holds inside its
    # serialised transaction, one INSERT each.
    writes = (
        ["WITH appointments allocations visit_offers outbox_messages audit_events"]
        if engine.dialect.name == "postgresql"
        else [
            "INSERT appointments",
            "SELECT allocations",
            "INSERT allocations",  # performer, patient and IDEL in one statement
            "INSERT visit_offers",
            "INSERT outbox_messages",
            "INSERT audit_events",
        ]
    )
    assert labels == [
        "SELECT api_tokens",
        # One read of the patient, the slot with its program, room and kit, and the rules' facts: waiting entry
        # (first in the FROM), eligibility, own IDEL.
        "SELECT waiting_entries",
        *writes,
        # No UPDATE of waiting_entries: the patient waits for nothing (the facts say so). Nothing left for the
        # commit: the audit row went with the offer.
    ], seen
    read = seen[1]
    for table in ("patients", "slots", "session_programs", "eligibility_assessments", "care_team_members"):
        assert f"FROM {table}" in read or f"JOIN {table}" in read, (table, read)
    holds = seen[2] if engine.dialect.name == "postgresql" else seen[4]
    if engine.dialect.name == "postgresql":
        assert holds.count(" UNION ALL ") == 2  # three rows, with the appointment's id
        assert "ON CONFLICT DO NOTHING" in holds
        assert "RETURNING appointments.id" in holds
    else:
        assert holds.count("), (") == 2  # three rows
        assert "RETURNING" in seen[2]


def test_a_booking_writes_its_offer_e_mail_and_audit_row_once_with_their_defaults(
    clock, api_as, db_session, territory, slot
):
    """The rows sent together (one statement on PostgreSQL) are those the plain INSERTs wrote: each once, with the
    columns' defaults (pending, first round, no attempt yet, due now)."""
    api = api_as(territory.coordinator)
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    booking = {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    response = api.post("/api/v1/appointments", json=booking)
    assert response.status_code == 201, response.get_json()
    appointment_id = response.get_json()["id"]
    idel = territory.idel
    offers = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == appointment_id)).all()
    assert [(o.professional_id, o.round, o.state, o.offered_at) for o in offers] == [
        (idel.id, 1, VisitOfferState.PENDING, factories.NOW)
    ]
    messages = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"visit_offered:offer:{appointment_id}:%"))
    ).all()
    assert [(m.idempotency_key, m.channel, m.recipient, m.state, m.attempts, m.max_attempts) for m in messages] == [
        (f"visit_offered:offer:{appointment_id}:{idel.id}:0", "email", idel.email, OutboxState.PENDING, 0, 8)
    ]
    # The very text json.dumps writes (on PostgreSQL the statement builds it around the new id).
    payload = {"appointment_id": appointment_id, "professional_id": idel.id}
    assert messages[0].payload == json.dumps(payload, sort_keys=True, ensure_ascii=False)
    assert messages[0].next_attempt_at is not None and messages[0].created_at is not None
    events = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.id > audited_before,  # audit rows outlive a test's cleanup: SQLite may reuse this id
            AuditEvent.target_type == "appointments",
            AuditEvent.target_id == str(appointment_id),
        )
    ).all()
    assert [(e.action, e.outcome, e.actor_user_id, e.cpts_id, e.details) for e in events] == [
        ("appointment.book", "success", territory.coordinator.id, territory.cpts.id, "{}")
    ]


def test_a_waiting_patient_s_booking_books_their_entry_in_the_same_request(
    clock, api_as, db_session, engine, territory, slot
):
    """The facts' waiting flag spares the UPDATE only to a patient who waits for nothing: one who waits for the
    program has their entry booked with the appointment (and audited)."""
    entry = waiting.add(
        db_session,
        territory.coordinator,
        patient=territory.patient,
        program=territory.program,
        urgency=WaitingUrgency.URGENT,
    )
    db_session.commit()
    api = api_as(territory.coordinator)
    _first_use(api, f"/api/v1/patients/{territory.patient.id}")
    booking = {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    with forbid_lazy_loads(), statements_on(engine) as seen:
        response = api.post("/api/v1/appointments", json=booking)
    assert response.status_code == 201, response.get_json()
    assert [label(statement) for statement in seen][-1] == "UPDATE waiting_entries"
    db_session.refresh(entry)
    assert (entry.state, entry.appointment_id) == (WaitingState.BOOKED, response.get_json()["id"])


def test_a_conflict_is_named_from_the_refused_hold_and_leaves_no_partial_hold(
    clock, db_session, engine, territory, slot, visit
):
    """The patient and the other IDEL are free, the cardiologist is not: on PostgreSQL the insert holds the first two
    and skips the third; the 409 names the cardiologist and the two holds are taken back, so that a caller going on
    after the conflict (a series books each session in a savepoint of its own) keeps none of them."""
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    written = [select(func.count()).select_from(model) for model in (VisitOffer, OutboxMessage, AuditEvent)]
    before = [db_session.scalar(count) for count in written]
    with count_queries(engine) as seen, pytest.raises(BookingConflict) as refused:
        appointments.book(
            db_session,
            territory.coordinator,
            slot=slot,
            patient=other,
            place_kind=PlaceKind.DEDICATED_PLACE,
            accompanying=territory.other_idel,
        )
    resource = refused.value.extra["resource"]
    assert resource == {
        "kind": "professional",
        "id": territory.cardiologist.id,
        "label": territory.cardiologist.full_name,
    }
    assert "déjà réservé" in refused.value.detail
    labels = [label(statement) for statement in seen]
    if engine.dialect.name == "postgresql":
        # The appointment, its holds, offer, e-mail and audit row in one statement, which says what went in: no
        # SELECT of the allocations.
        together = "WITH appointments allocations visit_offers outbox_messages audit_events"
        assert labels.index(together) < labels.index("DELETE allocations")
        assert "SELECT allocations" not in labels
    # Neither offer nor e-mail nor audit row for the refused booking (an audit row could not be deleted).
    assert [db_session.scalar(count) for count in written] == before
    held = db_session.scalars(
        select(Allocation.resource_id).where(
            (Allocation.resource_kind == AllocationResource.PATIENT) & (Allocation.resource_id == other.id)
            | (Allocation.resource_kind == AllocationResource.PROFESSIONAL)
            & (Allocation.resource_id == territory.other_idel.id)
        )
    ).all()
    assert held == []


def test_the_confirmation_reads_the_visit_once_with_its_lock(clock, api_as, db_session, engine, territory, visit):
    """The access check reads the row under its lock with the patient's consents: the workflow's lock() does not
    read it again (hub.row_locks)."""
    api = api_as(territory.idel_user)
    _first_use(api, f"/api/v1/appointments/{visit.id}")
    sequence = visit.sequence
    with forbid_lazy_loads(), forbid_flushes(), statements_on(engine) as seen, count_queries(engine) as sent:
        response = api.post(f"/api/v1/appointments/{visit.id}/confirm")
    assert response.status_code == 200, response.get_json()
    assert audit_inserts(sent) == (0 if engine.dialect.name == "postgresql" else 1), sent
    assert response.get_json()["state"] == AppointmentState.CONFIRMED.value
    db_session.expire_all()
    stored = db_session.get(Appointment, visit.id)
    assert (stored.state, stored.sequence) == (AppointmentState.CONFIRMED, sequence + 1)
    assert response.get_json()["confirmed_at"] is not None
    assert [label(statement) for statement in seen] == [
        "SELECT api_tokens",
        "SELECT appointments",  # the access check, the row lock, the patient and their consents
        # The offers answered without being read first; on PostgreSQL by the appointment's UPDATE, with its audit row.
        *(
            ["WITH audit_events visit_offers appointments"]
            if engine.dialect.name == "postgresql"
            else ["UPDATE visit_offers", "UPDATE appointments"]
        ),
    ], seen
    offer = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == visit.id)).one()
    assert (offer.state, offer.professional_id) == (VisitOfferState.ACCEPTED, territory.idel.id)
    assert offer.responded_at is not None
    lock = seen[1]
    assert "consents" in lock
    if engine.dialect.name == "postgresql":
        assert lock.endswith("FOR UPDATE OF appointments")


def test_a_lock_read_in_an_earlier_transaction_is_taken_again(clock, db_session, engine, territory, visit):
    """What the access check locked is forgotten when its transaction ends: a workflow run in the next one locks
    and re-reads the row itself."""
    appointment = appointment_for(
        db_session, territory.idel_user, visit.id, "confirm", load=appointments.CONSENTS_LOAD, lock=True
    )
    db_session.commit()
    with statements_on(engine) as seen:
        appointments.lock(db_session, appointment)
    assert [label(statement) for statement in seen] == ["SELECT appointments"], seen


def test_a_flush_between_the_access_check_and_the_workflow_keeps_the_lock_known(
    clock, db_session, engine, territory, visit
):
    """The subtransaction of a flush is no transaction of the database's: it releases no lock, and the workflow
    does not read the row it holds again (hub.row_locks)."""
    appointment = appointment_for(
        db_session, territory.idel_user, visit.id, "confirm", load=appointments.CONSENTS_LOAD, lock=True
    )
    territory.patient.phone = "0698765432"
    db_session.flush()
    with statements_on(engine) as seen:
        appointments.lock(db_session, appointment)
    assert seen == []


def test_a_lock_taken_in_a_savepoint_is_forgotten_with_it(clock, db_session, engine, territory, visit):
    """A savepoint rolled back releases the locks taken in it: the workflow locks the row again."""
    savepoint = db_session.begin_nested()
    appointment = appointment_for(
        db_session, territory.idel_user, visit.id, "confirm", load=appointments.CONSENTS_LOAD, lock=True
    )
    savepoint.rollback()
    with statements_on(engine) as seen:
        appointments.lock(db_session, appointment)
    assert [label(statement) for statement in seen] == ["SELECT appointments"], seen


def test_a_booking_builds_no_schema(clock, api_as, territory, slot, monkeypatch):
    """The booking's input and output schemas are built once, as the state changes' are (issue 17, P7): building
    AppointmentOut cost about half a millisecond a request."""
    built = []

    def counted(original):
        def init(self, *args, **kwargs):
            built.append(type(self).__name__)
            original(self, *args, **kwargs)

        return init

    for schema in (AppointmentIn, AppointmentOut):
        monkeypatch.setattr(schema, "__init__", counted(schema.__init__))
    booking = {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    response = api_as(territory.coordinator).post("/api/v1/appointments", json=booking)
    assert response.status_code == 201, response.get_json()
    assert built == []


@pytest.mark.parametrize(
    ("verb", "body"),
    [
        ("checklist", {"camera": True, "sound": True, "light": True, "privacy": True}),
        ("check-in", {"identity_method": "document", "patient_location": "Domicile", "callback_phone": "0612345678"}),
    ],
)
def test_the_checklist_and_the_check_in_read_the_visit_with_what_they_check(
    clock, api_as, db_session, engine, territory, verb, body
):
    """The patient's consents (a remote act needs one in force) and the program (its zone: the patient's age on the
    session's day, for the checklist) come with the visit in one statement built once (9 and 7 statements before),
    as plain rows: no ORM statement, no entity loaded, nothing flushed; the answer is the visit as stored."""
    confirmed = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED)
    db_session.commit()
    api = api_as(territory.idel_user)
    _first_use(api, f"/api/v1/appointments/{confirmed.id}")
    with (
        forbid_flushes(),
        orm_executions() as (executed, loaded),
        statements_on(engine) as seen,
        count_queries(engine) as sent,
    ):
        response = api.post(f"/api/v1/appointments/{confirmed.id}/{verb}", json=body)
    assert response.status_code == 200, response.get_json()
    assert audit_inserts(sent) == (0 if engine.dialect.name == "postgresql" else 1), sent
    assert (executed, loaded) == ([], [])
    db_session.expire_all()
    assert AppointmentOut().dump(db_session.get(Appointment, confirmed.id)) == response.get_json()
    assert [label(statement) for statement in seen] == [
        "SELECT api_tokens",
        "SELECT appointments",
        # The audit row inserted from the UPDATE's RETURNING (only if the visit is still as read), on PostgreSQL.
        "WITH appointments audit_events" if engine.dialect.name == "postgresql" else "UPDATE appointments",
    ]
    assert "consents" in seen[1] and "session_programs" in seen[1]
    audited = db_session.scalars(
        select(AuditEvent).where(AuditEvent.target_type == "appointments", AuditEvent.target_id == str(confirmed.id))
    ).all()
    assert [(e.action, e.actor_user_id, e.cpts_id, e.outcome) for e in audited][-1] == (
        f"appointment.{verb.replace('-', '_')}",
        territory.idel_user.id,
        confirmed.cpts_id,
        "success",
    )


def test_the_submission_locks_and_reads_the_referral_in_one_statement(api_as, engine, hub):  # noqa: F811
    gp = api_as(hub["gp"])
    referral_id = create(gp, hub).get_json()["id"]
    today = utcnow().astimezone(PARIS).date().isoformat()
    with forbid_lazy_loads(), statements_on(engine) as seen:
        response = gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": today})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "submitted"
    assert [label(statement) for statement in seen] == [
        "SELECT api_tokens",
        "SELECT referrals",  # the access check
        "SELECT referrals",  # the row lock, the fresh row, the patient and their consents
        "SELECT referral_attachments",  # eager, for the answer
        "INSERT consents",
        "UPDATE referrals",
    ], seen
    assert "consents" in seen[2]


def test_the_booking_s_answer_is_the_appointment_as_stored(clock, api_as, territory, slot):
    """The appointment answered is built from what its INSERT sent and returned (PostgreSQL: no ORM insert, no
    reload): the same JSON as reading it back, and nothing left to write at commit."""
    api = api_as(territory.coordinator)
    booking = {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    booked = api.post("/api/v1/appointments", json=booking)
    assert booked.status_code == 201, booked.get_json()
    body = booked.get_json()
    assert body.pop("warnings") == []
    read = api.get(f"/api/v1/appointments/{body['id']}")
    assert read.status_code == 200
    assert body == read.get_json()


def test_the_appointment_read_is_the_token_s_select_with_what_it_shows(
    clock, api_as, db_session, engine, territory, visit
):
    """GET appointment (twice per teleconsultation, issue 17 P7): the visit with its room's and kit's names read with
    the token's lookup, in one SELECT of the columns AppointmentOut shows, in the caller's CPTS, as plain rows (no
    ORM statement, no lazy load); the same JSON as the whole row dumped, and the same audit row."""
    visit.room_id = factories.resource(db_session, territory.cpts, ResourceKind.ROOM, name="Salle 2").id
    visit.kit_id = factories.resource(db_session, territory.cpts).id
    db_session.commit()
    api = api_as(territory.idel_user)
    _first_use(api, f"/api/v1/appointments/{visit.id}")
    with forbid_lazy_loads(), orm_executions() as (executed, _loaded), statements_on(engine) as seen:
        response = api.get(f"/api/v1/appointments/{visit.id}")
    assert response.status_code == 200, response.get_json()
    assert [label(statement) for statement in seen] == ["SELECT api_tokens"], seen
    assert not [s for s in executed if s.is_select], executed
    read = seen[0]
    assert "resources" in read and "appointments.cpts_id = users.cpts_id" in read
    assert "appointments.rituals" not in read and "appointments.created_by_user_id" not in read
    db_session.expire_all()
    expected = AppointmentOut().dump(db_session.get(Appointment, visit.id))
    assert expected["room_name"] == "Salle 2" and expected["kit_name"] is not None
    assert response.get_json() == expected
    audited = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (audited.action, audited.target_type, audited.target_id, audited.cpts_id, audited.actor_user_id) == (
        "appointment.read",
        "appointments",
        str(visit.id),
        territory.cpts.id,
        territory.idel_user.id,
    )


def test_an_appointment_of_another_cpts_or_not_one_s_own_is_not_found(clock, api_as, db_session, territory, visit):
    """The read's rule on the plain row is the entity's: a 404, audited, for a visit of another CPTS and for a
    professional who neither takes part in it nor is offered it."""
    other = factories.cpts(db_session, name="Autre CPTS")
    stranger = factories.user(db_session, other, Role.COORDINATOR)
    outsider_idel = factories.professional(db_session, territory.cpts, factories.Profession.NURSE)
    outsider = factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=outsider_idel)
    db_session.commit()
    for user in (stranger, outsider):
        response = api_as(user).get(f"/api/v1/appointments/{visit.id}")
        assert response.status_code == 404, response.get_json()
        refused = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert (refused.action, refused.outcome, refused.target_id) == ("appointment.read", "denied", str(visit.id))
    assert api_as(territory.coordinator).get(f"/api/v1/appointments/{visit.id}").status_code == 200


def test_the_report_read_runs_a_statement_built_once(clock, api_as, db_session, territory):
    """The access check's SELECT is built once per model and loader options, as the locking one: session.get built a
    statement and its cache key at every request."""
    done = factories.visit(db_session, territory, state=AppointmentState.DONE)
    specialist = factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)
    report = reports.start_report(db_session, specialist, done)
    url, api = f"/api/v1/reports/{report.id}", api_as(specialist)
    db_session.commit()
    _first_use(api, url)
    with orm_executions() as (executed, _loaded):
        assert api.get(url).status_code == 200
        assert api.get(url).status_code == 200
    reads = [s for s in executed if s.is_select and s.column_descriptions[0]["entity"] is Report]
    assert len(reads) == 2 and reads[0] is reads[1], reads


def test_a_draft_saved_and_signed_leaves_the_session_nothing_to_flush(clock, api_as, db_session, engine, territory):
    """The report's PATCH and its signature write their row in one UPDATE of their own (hub.db.update_row): the
    answers show the row as stored; a PATCH repeating the stored text writes nothing, as the unit of work did."""
    done = factories.visit(db_session, territory, state=AppointmentState.DONE)
    specialist = factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)
    report = reports.start_report(db_session, specialist, done)
    db_session.commit()
    api = api_as(specialist)
    url = f"/api/v1/reports/{report.id}"
    _first_use(api, url)
    written = {"acts": "Téléconsultation, ECG lu à distance.", "conclusion": "Pas de décompensation."}
    with forbid_flushes():
        patched = api.patch(url, json=written)
        with statements_on(engine) as seen:
            again = api.patch(url, json=written)
        signed = api.post(f"{url}/sign")
    assert patched.status_code == again.status_code == signed.status_code == 200, signed.get_json()
    assert not [statement for statement in seen if statement.startswith("UPDATE reports")], seen
    assert again.get_json() == patched.get_json()
    db_session.expire_all()
    assert api.get(url).get_json() == signed.get_json()
    stored = db_session.get(Report, report.id)
    assert (stored.acts, stored.conclusion) == (written["acts"], written["conclusion"])
    assert stored.signed_at is not None and stored.content_sha256 == signed.get_json()["content_sha256"]


def test_the_appointment_s_answer_is_appointment_out_s_dump_field_for_field(clock, db_session, territory, visit):
    """`appointment_out` (the API's answers without marshmallow) gives AppointmentOut's dump, its fields in its
    order, for appointments that fill in what a visit leaves empty."""
    room = factories.resource(db_session, territory.cpts, ResourceKind.ROOM, name="Salle 2")
    later = factories.MONDAY_14H + dt.timedelta(hours=2)
    confirmed = factories.visit(db_session, territory, later, state=AppointmentState.CHECKED_IN)
    shapes = [
        {},
        {"room_id": room.id, "kit_id": factories.resource(db_session, territory.cpts).id},
        {
            "kind": AppointmentKind.TELESOIN,
            "accompanying_id": None,
            "telesoin_act": TelesoinActCode.REMOTE_DRESSING.value,
            "act_coefficient": Decimal("3.9"),
            "last_in_person_dressing_on": dt.date(2026, 11, 2),
            "last_in_person_contact_on": dt.date(2026, 6, 30),
            "remote_share_override_reason": "Patient isolé",
        },
        {
            "state": AppointmentState.CANCELLED,
            "cancelled_at": utcnow(),
            "cancel_reason": "Hospitalisé",
            "is_late_cancellation": True,
            "declined_reason": "Tournée complète",
            "degraded_reason": "Coupure",
        },
    ]
    for shape in shapes:
        for name, value in shape.items():
            setattr(visit, name, value)
        db_session.flush()
        for appointment in (visit, confirmed):
            expected = AppointmentOut().dump(appointment)
            answered = appointment_entity_out(appointment)
            assert answered == expected and list(answered) == list(expected)
    assert confirmed.checklist_saved_at is not None and appointment_entity_out(confirmed)["checklist"]
    assert appointment_entity_out(visit)["telesoin_act_label"] == "Suivi d'un pansement à distance"
    assert list(expected) == list(AppointmentOut().fields)


_CHECK_IN = {"identity_method": "document", "patient_location": "Domicile", "callback_phone": "0612345678"}
_CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}


def _committed_confirmed_visit(committed, source=BOOKED_IN_HUB) -> tuple[int, int, int, str, int | None]:
    """A confirmed visit committed for real with a token of its IDEL: (its id, its sequence, the IDEL's user id, the
    raw token, the last audit row's id before the test's requests)."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        territory = factories.territory(session, cpts)
        confirmed = factories.visit(session, territory, state=AppointmentState.CONFIRMED)
        confirmed.source = source
        _row, raw = accounts.create_api_token(session, territory.idel_user, name="tests")
        session.commit()
        # Audit rows stay when a test's rows are purged, and SQLite gives a purged visit's id again: only later rows.
        audited_before = session.scalar(select(func.max(AuditEvent.id)))
        return confirmed.id, confirmed.sequence, territory.idel_user.id, raw, audited_before


@pytest.mark.parametrize(
    ("verb", "body", "action", "source"),
    [
        ("checklist", _CHECKLIST, "appointment.checklist", BOOKED_IN_HUB),
        ("check-in", _CHECK_IN, "appointment.check_in", BOOKED_IN_HUB),
        ("check-in", _CHECK_IN, "appointment.check_in", BOOKED_THROUGH_SAS),  # the SAS follows it
    ],
)
def test_a_single_write_runs_without_a_transaction_on_postgresql(clock, app, committed, verb, body, action, source):
    """The checklist and the check-in (hub.http.access.single_write): on PostgreSQL the token's and the visit's
    SELECTs and the UPDATE carrying its audit row each run committed on their own, with no BEGIN nor COMMIT (two
    round trips fewer), and the row and its audit row are there; a refusal writes neither. On SQLite the request
    keeps its transaction (its audit row an INSERT of its own). Committed for real: the tests' outer transaction
    would hide the very transactions this is about."""
    # What lets the check-in be a single write: the status it leads to is not one the SAS is told of, so a
    # SAS-booked visit's check-in has nothing to queue for it (the same statements as any other's, below).
    checked_in = appointments.MACHINE.target("check_in", AppointmentState.CONFIRMED)
    assert fhir.APPOINTMENT_STATUSES[checked_in] not in sas.PUSHED_STATUSES
    factory, _created = committed
    visit_id, _sequence, user_id, raw, audited_before = _committed_confirmed_visit(committed, source)
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    assert client.get(f"/api/v1/appointments/{visit_id}", headers=headers).status_code == 200  # stamps last_used_at
    engine = app.extensions["hub.engine"]
    postgresql = engine.dialect.name == "postgresql"
    seen: list[tuple[str, bool]] = []
    commits: list[bool] = []

    def record(conn, _cursor, statement, *_args):
        dbapi = conn.connection.dbapi_connection
        seen.append((label(" ".join(statement.split())), dbapi.autocommit if postgresql else dbapi.in_transaction))

    def on_commit(_conn):
        commits.append(True)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", on_commit)
    try:
        response = client.post(f"/api/v1/appointments/{visit_id}/{verb}", json=body, headers=headers)
        refused = client.post(f"/api/v1/appointments/{visit_id}/{verb}", json={}, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", on_commit)
    assert response.status_code == 200, response.get_json()
    assert refused.status_code in (409, 422), refused.get_json()  # checked in already; a checklist left empty
    if postgresql:
        assert seen == [
            ("SELECT api_tokens", True),
            ("SELECT appointments", True),
            ("WITH appointments audit_events", True),  # the audit row inserted from the UPDATE's RETURNING
            ("SELECT api_tokens", True),  # the refusal: its reads only
            ("SELECT appointments", True),
        ], seen
        assert commits == [], commits
    else:
        assert ("UPDATE appointments", True) in seen and ("INSERT audit_events", True) in seen, seen
    with factory() as session:
        audited = session.execute(
            select(AuditEvent.action, AuditEvent.actor_user_id, AuditEvent.outcome).where(
                AuditEvent.id > audited_before,
                AuditEvent.target_type == "appointments",
                AuditEvent.target_id == str(visit_id),
            )
        ).all()
        stored = session.get(Appointment, visit_id)
        done = stored.checklist_saved_at if verb == "checklist" else stored.identity_checked_at
    assert [tuple(row) for row in audited if row.action == action] == [(action, user_id, "success")]
    assert done is not None


@pytest.mark.parametrize(
    ("verb", "body", "action", "meanwhile"),
    [
        (
            "check-in",
            _CHECK_IN,
            "appointment.check_in",
            {"state": AppointmentState.CANCELLED, "cancel_reason": "Hospitalisé"},  # the state changed
        ),
        ("checklist", _CHECKLIST, "appointment.checklist", {"patient_location": "Cabinet infirmier"}),  # same state
    ],
)
def test_a_single_write_refuses_a_visit_changed_since_its_read(
    clock, app, committed, monkeypatch, verb, body, action, meanwhile
):
    """The check-in and the checklist read the visit without a lock (hub.http.access.single_write): another writer
    committing between that read and their write (here from the rules' step, on a connection of its own) makes them
    answer 409 with the other writer's row kept whole and no audit row of theirs, on PostgreSQL (the audit row
    inserted from the UPDATE's RETURNING: from no row) as on SQLite (the audit row inserted only after a matched
    UPDATE). Without the condition a cancelled visit was checked in, or a concurrent write overwritten."""
    factory, _created = committed
    visit_id, sequence, _user_id, raw, audited_before = _committed_confirmed_visit(committed)
    changed = meanwhile | {"sequence": sequence + 1}
    worked_out = appointments.checked_in_values if verb == "check-in" else appointments.checklist_values

    postgresql = app.extensions["hub.engine"].dialect.name == "postgresql"
    other_write = update(Appointment).where(Appointment.id == visit_id).values(changed)

    def other_writer_first(*args, **kwargs):
        values = worked_out(*args, **kwargs)
        if postgresql:
            with factory() as other:
                other.execute(other_write)
                other.commit()
        else:
            # SQLite: the request's BEGIN IMMEDIATE holds the write lock from its read on, so no other writer can
            # come between (the race is PostgreSQL's); a write on the request's own connection stands for one, and
            # goes with the refused request's rollback.
            db().execute(other_write)
        return values

    monkeypatch.setattr(appointments, worked_out.__name__, other_writer_first)
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    response = client.post(f"/api/v1/appointments/{visit_id}/{verb}", json=body, headers=headers)
    assert response.status_code == 409, response.get_json()
    problem = response.get_json()
    assert response.mimetype == "application/problem+json" and problem["type"].endswith("/invalid-transition")
    assert problem["detail"] == appointments.CHANGED_MEANWHILE and problem["action"] == verb.replace("-", "_")
    with factory() as session:
        stored = session.get(Appointment, visit_id)
        kept = changed if postgresql else {"state": AppointmentState.CONFIRMED, "sequence": sequence}
        assert {name: getattr(stored, name) for name in kept} == kept
        assert stored.identity_checked_at is None and stored.checklist_saved_at is None
        audited = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.id > audited_before,
                AuditEvent.target_type == "appointments",
                AuditEvent.target_id == str(visit_id),
            )
        ).all()
    assert action not in audited, audited
