"""Booking a remote session through the API for a patient with no eligibility checklist: a 422 problem+json
naming the patient and the modality (so that a client can open the checklist), nothing saved."""

import pytest

from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.web.test_booking_eligibility_pages import last_audit_id, nothing_booked

pytestmark = pytest.mark.usefixtures("clock")


def test_the_api_answers_a_problem_naming_the_patient_and_modality(api_as, db_session, territory, newcomer, slot):
    body = {"slot_id": slot.id, "patient_id": newcomer.id, "place_kind": "lieu_dedie"}
    audited = last_audit_id(db_session)
    problem = assert_problem(api_as(territory.coordinator).post("/api/v1/appointments", json=body), 422)
    assert problem["detail"].startswith("Vérifiez d'abord l'éligibilité du patient")
    assert (problem["patient_id"], problem["modality"], problem["eligibility"]) == (
        newcomer.id,
        "assisted_teleconsultation",
        "missing",
    )
    assert nothing_booked(db_session, newcomer, audited_after=audited)


def test_after_the_checklist_the_same_booking_goes_through(api_as, db_session, territory, newcomer, slot):
    factories.eligible_for_remote_care(db_session, newcomer, assessed_by=territory.coordinator)
    db_session.commit()
    body = {"slot_id": slot.id, "patient_id": newcomer.id, "place_kind": "lieu_dedie"}
    response = api_as(territory.coordinator).post("/api/v1/appointments", json=body)
    assert response.status_code == 201, response.json
