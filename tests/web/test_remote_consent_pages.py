"""Consent to the end on « Mes visites »: a telehealth consent withdrawn after confirmation refuses the check-in
with the rule in French, and the accompanying IDEL records the consent from the same page (audited), after
which the check-in goes through."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AppointmentState, AuditEvent, ConsentKind, ConsentMethod
from hub.services import identity
from tests import factories
from tests.factories import MONDAY_14H
from tests.web.test_visits_pages import CHECK_IN, field_error, text

pytestmark = pytest.mark.usefixtures("clock")


def withdrawn_visit(db_session, territory, state):
    visit = factories.visit(db_session, territory, state=state)
    consent = identity.valid_consent(territory.patient, ConsentKind.TELEHEALTH)
    identity.withdraw_consent(db_session, territory.coordinator, consent, reason="Ne souhaite plus la vidéo")
    db_session.commit()
    return visit


def test_the_idel_records_the_missing_consent_and_checks_in(auth, db_session, territory, clock):
    visit = withdrawn_visit(db_session, territory, AppointmentState.CONFIRMED)
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=20))
    auth.login(territory.idel_user)
    assert "Consentement à la télésanté à recueillir" in text(auth.client.get("/visits"))
    assert "Recueillir le consentement" in text(auth.client.get(f"/visits/{visit.id}"))

    refused = auth.post(f"/visits/{visit.id}/check-in", CHECK_IN)
    assert refused.status_code == 422
    body = text(refused)
    assert "Le patient a retiré son consentement au télésoin : proposez une alternative en présentiel." in body
    assert "Recueillir le consentement" in body, "not a dead end: the form to record it is there"
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CONFIRMED

    wrong = auth.post(f"/visits/{visit.id}/consent", {"method": "electronic"})
    assert wrong.status_code == 422
    assert "oral ou écrit" in field_error(text(wrong), "method")

    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    assert auth.post(f"/visits/{visit.id}/consent", {"method": "oral"}).status_code == 302
    db_session.refresh(territory.patient)
    consent = identity.valid_consent(territory.patient, ConsentKind.TELEHEALTH)
    assert consent is not None and consent.method is ConsentMethod.ORAL
    assert consent.recorded_by_user_id == territory.idel_user.id
    assert db_session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "consent.add",
            AuditEvent.target_id == str(consent.id),
            AuditEvent.id > audited_before,
        )
    )
    assert "Recueillir le consentement" not in text(auth.client.get(f"/visits/{visit.id}"))
    assert auth.post(f"/visits/{visit.id}/check-in", CHECK_IN).status_code == 302
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CHECKED_IN


def test_a_withdrawal_after_check_in_refuses_the_completion(auth, db_session, territory, clock):
    visit = withdrawn_visit(db_session, territory, AppointmentState.CHECKED_IN)
    clock.move_to(MONDAY_14H)
    auth.login(territory.idel_user)
    refused = auth.post(f"/visits/{visit.id}/complete")
    assert refused.status_code == 422
    assert "retiré son consentement au télésoin" in text(refused)
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CHECKED_IN


def test_another_idel_cannot_record_the_consent(auth, db_session, territory, clock):
    visit = withdrawn_visit(db_session, territory, AppointmentState.CONFIRMED)
    auth.login(territory.other_idel_user)
    assert auth.post(f"/visits/{visit.id}/consent", {"method": "oral"}).status_code == 404
    db_session.refresh(territory.patient)
    assert identity.valid_consent(territory.patient, ConsentKind.TELEHEALTH) is None


def test_the_coordinator_sees_the_remote_sessions_to_review_after_a_withdrawal(auth, db_session, territory):
    visit = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED)
    db_session.commit()
    auth.login(territory.coordinator)
    page = text(auth.client.get(f"/patients/{territory.patient.id}"))
    assert "Séances à distance à revoir" not in page
    consent = identity.valid_consent(territory.patient, ConsentKind.TELEHEALTH)
    url = f"/patients/{territory.patient.id}/consents/{consent.id}/withdraw"
    assert auth.post(url, {"reason": "Ne souhaite plus la vidéo"}).status_code == 302
    page = text(auth.client.get(f"/patients/{territory.patient.id}"))
    assert "Séances à distance à revoir (1)" in page
    assert f"/planning/appointments/{visit.id}" in page, "the coordinator goes from there to cancel or rebook"
