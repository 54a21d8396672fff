"""The coordinator books a remote session for a patient with no eligibility checklist: the planner's booking
page and the API refuse it in French, save nothing, and lead to the patient's checklist."""

import pytest
from sqlalchemy import func, select

from hub.models import Allocation, Appointment, AuditEvent

pytestmark = pytest.mark.usefixtures("clock")


def last_audit_id(session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def nothing_booked(session, patient, *, audited_after: int) -> bool:
    """No appointment or allocation for the patient, no booking audit line since the request began (the audit
    is append-only: lines of committed tests stay, and SQLite reuses their CPTS ids)."""
    booked = select(Appointment.id).where(Appointment.patient_id == patient.id)
    appointments = session.scalar(select(func.count()).select_from(booked.subquery()))
    held = session.scalar(select(func.count()).where(Allocation.appointment_id.in_(booked)))
    audited = session.scalar(
        select(func.count()).where(AuditEvent.action == "appointment.book", AuditEvent.id > audited_after)
    )
    return appointments == held == audited == 0


def test_the_booking_page_refuses_and_links_to_the_patients_checklist(auth, db_session, territory, newcomer, slot):
    auth.login(territory.coordinator)
    audited = last_audit_id(db_session)
    response = auth.post(f"/planning/slots/{slot.id}/book", {"patient_id": newcomer.id, "place_kind": "lieu_dedie"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Vérifiez d&#39;abord l&#39;éligibilité du patient au soin à distance" in body
    checklist = f"/patients/{newcomer.id}/eligibilite?modality=assisted_teleconsultation"
    assert f'href="{checklist}">Vérifier l\'éligibilité de ce patient (liste HAS)</a>' in body
    assert nothing_booked(db_session, newcomer, audited_after=audited)
    page = auth.client.get(checklist)
    assert page.status_code == 200 and "Liste de vérification (HAS)" in page.get_data(as_text=True)


def test_another_refusal_shows_no_checklist_link(auth, db_session, territory, slot):
    auth.login(territory.coordinator)
    response = auth.post(f"/planning/slots/{slot.id}/book", {"place_kind": "lieu_dedie"})
    assert response.status_code == 422 and "/eligibilite" not in response.get_data(as_text=True)
