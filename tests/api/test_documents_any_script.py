"""I4 (docs/guarantees.md) through the API and the pages: a referral whose reason holds signs, an emoji and
Polish is scheduled and its letter downloads; the fee statement of a professional with a Polish name downloads."""

import datetime as dt
from zoneinfo import ZoneInfo

import time_machine

from hub.db import utcnow
from hub.models import Profession
from tests import ZONE, factories
from tests.api.test_referrals_api import ASSISTED_CHECKLIST, hub  # noqa: F401 (the fixture)
from tests.documents.test_any_script import ANY_SCRIPT
from tests.pdfs import pdf_text


def test_a_referral_in_any_script_is_scheduled_and_its_letter_downloads(api_as, auth, hub):  # noqa: F811
    gp, coordinator = api_as(hub["gp"]), api_as(hub["coordinator"])
    created = gp.post(
        "/api/v1/referrals",
        json={"patient_id": hub["patient"].id, "target_program_id": hub["program"].id, "reason": ANY_SCRIPT},
    )
    referral_id = created.json["id"]
    today = utcnow().astimezone(ZoneInfo(ZONE)).date().isoformat()
    assert gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": today}).status_code == 200
    assert coordinator.post(f"/api/v1/referrals/{referral_id}/accept").status_code == 200
    assert (
        coordinator.post(f"/api/v1/patients/{hub['patient'].id}/eligibility", json=ASSISTED_CHECKLIST).status_code
        == 201
    )

    scheduled = coordinator.post(f"/api/v1/referrals/{referral_id}/schedule", json={"slot_id": hub["slot"].id})

    assert scheduled.status_code == 200, scheduled.json
    assert scheduled.json["state"] == "scheduled"
    auth.login(hub["coordinator"])
    letter = auth.client.get(f"/referrals/{referral_id}/letter.pdf")
    assert letter.status_code == 200 and letter.mimetype == "application/pdf"
    text = pdf_text(letter.get_data())
    assert "≥ ? Łukasz" in text, "the emoji the font lacks becomes a visible placeholder"


def test_the_fee_statement_of_a_professional_named_in_any_script_downloads(auth, db_session, cpts):
    lukasz = factories.clinician(db_session, cpts, Profession.NURSE, last_name="Żółć", first_name="Łukasz")
    patient = factories.patient(db_session, cpts, birth_name="ΑΘΗΝΑ", first_birth_given_name="ЖАННА")
    factories.fee_entry(db_session, lukasz.professional, "TLL", dt.date(2026, 11, 23), patient=patient)
    db_session.commit()

    with time_machine.travel(dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC), tick=False):
        auth.login(lukasz)
        response = auth.client.get(
            f"/fees/professionals/{lukasz.professional_id}/statement.pdf", query_string={"year": 2026, "month": 11}
        )

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.get_data())
    assert "Łukasz ŻÓŁĆ" in text and "TLL" in text
    assert "Ж.Α." in text, "the patient's initials, Cyrillic and Greek"
