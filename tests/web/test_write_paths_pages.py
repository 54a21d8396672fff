"""The coordinator's booking page writes as the API does (tests.api.test_write_paths): no lazy load, one INSERT per
table, no waiting-list UPDATE for a patient who waits for nothing."""

from sqlalchemy import select

from hub.models import Appointment
from tests.api.test_write_paths import label
from tests.queries import forbid_lazy_loads, statements_on


def test_booking_from_the_planning_writes_each_table_once_without_a_lazy_load(
    clock, auth, engine, db_session, territory, slot
):
    auth.login(territory.coordinator)
    with forbid_lazy_loads(), statements_on(engine) as seen:
        response = auth.post(
            f"/planning/slots/{slot.id}/book", {"patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
        )
    assert response.status_code == 302, response.get_data(as_text=True)
    writes = [label(statement) for statement in seen if not statement.startswith("SELECT")]
    assert writes == [
        "INSERT appointments",
        "INSERT allocations",
        "INSERT visit_offers",
        "INSERT outbox_messages",
    ], seen
    assert db_session.scalars(select(Appointment.accompanying_id)).one() == territory.idel.id
