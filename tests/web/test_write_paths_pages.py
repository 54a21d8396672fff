"""The coordinator's booking page reads and writes as the API does (tests.api.test_write_paths): one read of the slot,
the patient and the rules' facts, no lazy load, one INSERT per table, no waiting-list UPDATE for a patient who waits
for nothing."""

from sqlalchemy import select

from hub.models import Appointment, OutboxMessage, VisitOffer
from tests.api.test_write_paths import SAVEPOINTS, label
from tests.queries import count_queries, forbid_lazy_loads


def test_booking_from_the_planning_writes_each_table_once_without_a_lazy_load(
    clock, auth, engine, db_session, territory, slot
):
    auth.login(territory.coordinator)
    with forbid_lazy_loads(), count_queries(engine) as sent:
        response = auth.post(
            f"/planning/slots/{slot.id}/book", {"patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
        )
    assert response.status_code == 302, response.get_data(as_text=True)
    # The audit rows written alone (the request's, SQLite's booking's) are left out, as tests.queries.statements_on
    # does; not the statement that writes the booking's with its other rows.
    seen = [" ".join(statement.split()) for statement in sent]
    seen = [s for s in seen if not s.startswith((*SAVEPOINTS, "INSERT INTO audit_events")) and "advisory" not in s]
    # PostgreSQL writes the appointment, its holds, offer, e-mail and audit row in one statement
    # (scheduling.bookings.insert_holding), its exclusion constraint the check. SQLite checks the holds inside its
    # serialised transaction.
    writes = (
        ["WITH appointments allocations visit_offers outbox_messages audit_events"]
        if engine.dialect.name == "postgresql"
        else [
            "INSERT appointments",
            "SELECT allocations",
            "INSERT allocations",
            "INSERT visit_offers",
            "INSERT outbox_messages",
        ]
    )
    assert [label(statement) for statement in seen] == [
        "SELECT user_sessions",
        # The API's one read (workflows.appointments.requested_booking): the patient, the slot with its program,
        # room and kit, and the rules' facts. It was three SELECTs (slot, patient, facts) before 2026-12-04 (hc).
        "SELECT waiting_entries",
        *writes,
    ], seen
    read = seen[1]
    for table in ("patients", "slots", "session_programs", "eligibility_assessments", "care_team_members"):
        assert f"FROM {table}" in read or f"JOIN {table}" in read, (table, read)
    appointment = db_session.scalars(select(Appointment)).one()
    assert appointment.accompanying_id == territory.idel.id
    offers = db_session.scalars(select(VisitOffer.professional_id).where(VisitOffer.appointment_id == appointment.id))
    assert offers.all() == [territory.idel.id]
    keys = select(OutboxMessage.idempotency_key).where(
        OutboxMessage.idempotency_key.like(f"visit_offered:offer:{appointment.id}:%")
    )
    assert db_session.scalars(keys).all() == [f"visit_offered:offer:{appointment.id}:{territory.idel.id}:0"]
