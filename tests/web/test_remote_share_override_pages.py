"""The 20 % télésoin share on the planner's booking page: refused in French with a field for the reason shown
only then; the coordinator's reason books the session, and the override is listed on the CPTS's fees page."""

import pytest
from sqlalchemy import select

from hub.models import Appointment, AuditEvent
from tests.api.test_remote_share_override_api import KINE_ACT, REASON, kine_near_the_cap  # noqa: F401  (a fixture)
from tests.web.test_booking_eligibility_pages import last_audit_id, nothing_booked

pytestmark = pytest.mark.usefixtures("clock")

FIELD = 'name="remote_share_override_reason"'
LABEL = "Motif de dérogation au plafond de 20\u00a0%"


def test_the_field_is_shown_only_once_the_share_refused(auth, territory, kine_near_the_cap):  # noqa: F811
    _kine, slot = kine_near_the_cap
    auth.login(territory.coordinator)
    page = auth.client.get(f"/planning/slots/{slot.id}/book").get_data(as_text=True)
    assert FIELD not in page and LABEL not in page


def test_past_the_cap_the_page_refuses_then_books_with_a_reason(auth, db_session, territory, kine_near_the_cap):  # noqa: F811
    kine, slot = kine_near_the_cap
    auth.login(territory.coordinator)
    audited = last_audit_id(db_session)
    form = {"patient_id": territory.patient.id, "place_kind": "domicile", **KINE_ACT}
    refused = auth.post(f"/planning/slots/{slot.id}/book", form)
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "au-delà du plafond de 20\u00a0%" in body and FIELD in body and LABEL in body
    assert nothing_booked(db_session, territory.patient, audited_after=audited)

    booked = auth.post(f"/planning/slots/{slot.id}/book", form | {"remote_share_override_reason": REASON})
    assert booked.status_code == 302, booked.get_data(as_text=True)
    appointment = db_session.scalar(select(Appointment).where(Appointment.slot_id == slot.id))
    assert appointment.remote_share_override_reason == REASON
    assert db_session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.action == "remote_share.override",
            AuditEvent.target_id == str(appointment.id),
            AuditEvent.id > audited,
        )
    )

    overview = auth.client.get("/fees/cpts").get_data(as_text=True)
    section = overview[overview.index('id="overrides"') :]
    assert kine.full_name in section and "20,1\u00a0%" in section
    assert "Sortie d&#39;hospitalisation, présentiel impossible" in section
