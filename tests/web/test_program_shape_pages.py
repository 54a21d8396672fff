"""Issue 11, item 1: the program's shape on the coordinator's pages. The VIVEVAL Monday is planned with
the interval between slot starts and its three slots booked for three patients with three IDELs; an
interval that would hold the kit twice is refused next to the field with the interval that fits."""

import pytest
from sqlalchemy import func, select

from hub.models import Appointment, Profession, SessionProgram
from tests import factories
from tests.api.test_program_shape_api import ecg_kit
from tests.factories import PROGRAM_FORM
from tests.web.test_planning_pages import created_program, field_error, monday_slots, text

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def coordinator(auth, territory):
    auth.login(territory.coordinator)
    return territory.coordinator


def test_the_form_has_the_interval_with_its_label(auth, coordinator):
    page = text(auth.client.get("/planning/programs/new"))
    assert "Intervalle entre deux débuts de créneau (min)" in page and 'name="slot_interval_minutes"' in page


def test_the_viveval_monday_is_planned_and_booked_from_the_pages(auth, db_session, coordinator, territory):
    kit = ecg_kit(db_session, territory)
    program = created_program(db_session, auth, territory, kit_id=str(kit.id), slot_interval_minutes="60")
    assert program.slot_interval_minutes == 60
    slots = monday_slots(db_session, program, day=factories.MONDAY_14H) + monday_slots(
        db_session, program, day=factories.MONDAY_14H.replace(hour=15)
    )
    slots += monday_slots(db_session, program, day=factories.MONDAY_14H.replace(hour=16))
    assert len(slots) == 3
    for slot in slots:
        idel = factories.professional(db_session, territory.cpts, Profession.NURSE)
        patient = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
        response = auth.post(
            f"/planning/slots/{slot.id}/book",
            {"patient_id": patient.id, "place_kind": "lieu_dedie", "accompanying_id": idel.id},
        )
        assert response.status_code == 302, text(response)
    booked = db_session.scalars(select(Appointment).where(Appointment.program_id == program.id)).all()
    assert len(booked) == 3 and len({a.accompanying_id for a in booked}) == 3
    assert {a.kit_id for a in booked} == {kit.id}
    edit = text(auth.client.get(f"/planning/programs/{program.id}/edit"))
    assert 'name="slot_interval_minutes" type="number"\n      value="60"' in edit


def test_a_too_short_interval_is_refused_next_to_the_field(auth, db_session, coordinator, territory):
    kit = ecg_kit(db_session, territory)
    response = auth.post(
        "/planning/programs/new",
        PROGRAM_FORM | {"performer_id": territory.cardiologist.id, "kit_id": kit.id, "slot_interval_minutes": "30"},
    )
    assert response.status_code == 422
    assert "Indiquez un intervalle d'au moins 60 min." in field_error(text(response), "slot_interval_minutes")
    assert (
        db_session.scalar(select(func.count()).select_from(SessionProgram).where(SessionProgram.kit_id == kit.id)) == 0
    )


def test_a_series_edit_that_holds_the_kit_twice_is_refused(auth, db_session, coordinator, territory):
    kit = ecg_kit(db_session, territory)
    program = created_program(db_session, auth, territory, kit_id=str(kit.id), slot_interval_minutes="60")
    values = {key: value for key, value in PROGRAM_FORM.items() if key not in ("kind", "first_day")}
    response = auth.post(
        f"/planning/programs/{program.id}/edit",
        values | {"kit_id": kit.id, "slot_interval_minutes": "", "scope": "series"},
    )
    assert response.status_code == 422
    assert "au moins 60 min" in field_error(text(response), "slot_interval_minutes")
    db_session.refresh(program)
    assert program.slot_interval_minutes == 60
