"""Consent to the end through the API: a telehealth consent withdrawn after the IDEL confirmed stops the
check-in and the completion of the remote session (422 problem+json naming the rule), and no fee accrues."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AppointmentState, ConsentKind, FeeEntry
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.factories import MONDAY_14H

pytestmark = pytest.mark.usefixtures("clock")

CHECK_IN = {
    "identity_method": "document",
    "patient_location": "Cabinet infirmier, Vergt",
    "callback_phone": "0612345678",
}
WITHDRAWN = "retiré son consentement au télésoin"


def withdraw(api_as, territory, patient) -> dict:
    consent = next(c for c in patient.consents if c.kind is ConsentKind.TELEHEALTH and c.is_valid)
    url = f"/api/v1/patients/{patient.id}/consents/{consent.id}/withdraw"
    response = api_as(territory.coordinator).post(url, json={"reason": "Ne souhaite plus la vidéo"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def fees_of(db_session, appointment) -> int:
    return db_session.scalar(
        select(func.count()).select_from(FeeEntry).where(FeeEntry.appointment_id == appointment.id)
    )


def test_a_withdrawal_after_confirmation_blocks_the_check_in(api_as, db_session, territory, clock):
    visit = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED)
    db_session.commit()
    withdraw(api_as, territory, territory.patient)
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=15))
    body = assert_problem(
        api_as(territory.idel_user).post(f"/api/v1/appointments/{visit.id}/check-in", json=CHECK_IN), 422
    )
    assert WITHDRAWN in body["detail"] and "présentiel" in body["detail"]
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CONFIRMED and visit.identity_checked_at is None


def test_a_withdrawal_after_check_in_blocks_the_completion_and_its_fee(api_as, db_session, territory, clock):
    visit = factories.visit(db_session, territory, state=AppointmentState.CHECKED_IN)
    db_session.commit()
    withdraw(api_as, territory, territory.patient)
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=15))
    body = assert_problem(api_as(territory.idel_user).post(f"/api/v1/appointments/{visit.id}/complete"), 422)
    assert WITHDRAWN in body["detail"]
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CHECKED_IN
    assert fees_of(db_session, visit) == 0, "no fee for a remote act without a valid consent"


def test_a_consent_collected_again_lets_the_session_be_paid(api_as, db_session, territory, clock):
    visit = factories.visit(db_session, territory, state=AppointmentState.CHECKED_IN)
    db_session.commit()
    withdraw(api_as, territory, territory.patient)
    coordinator = api_as(territory.coordinator)
    again = {"kind": "telehealth", "method": "written", "collected_at": factories.now().isoformat()}
    assert coordinator.post(f"/api/v1/patients/{territory.patient.id}/consents", json=again).status_code == 201
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=15))
    done = api_as(territory.idel_user).post(f"/api/v1/appointments/{visit.id}/complete")
    assert done.status_code == 200, done.get_json()
    assert fees_of(db_session, visit) > 0


def test_the_withdrawal_lists_the_future_remote_sessions_to_review(api_as, db_session, territory, clock):
    confirmed = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED)
    proposed = factories.visit(db_session, territory, MONDAY_14H + dt.timedelta(days=7))
    earlier = MONDAY_14H - dt.timedelta(days=7)
    factories.visit(db_session, territory, earlier)
    db_session.commit()
    clock.move_to(earlier + dt.timedelta(hours=1))  # that one is past: nothing left to review
    body = withdraw(api_as, territory, territory.patient)
    assert body["is_valid"] is False
    assert body["remote_appointments_to_review"] == [confirmed.id, proposed.id]
