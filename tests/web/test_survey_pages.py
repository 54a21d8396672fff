"""« Votre avis sur votre séance à distance »: when a remote session is done, its patient is sent a single-use link
(SMS, no health data); the page needs no account, is answered once, and expires after 14 days. The hub keeps only
the token's hash."""

import datetime as dt
import html
import json

import pytest
from sqlalchemy import select

from connectors.email import render
from hub.models import AppointmentKind, AppointmentState, OutboxMessage, SatisfactionSurvey
from tests import factories
from tests.factories import PARIS
from workflows import completion, surveys

pytestmark = pytest.mark.usefixtures("clock")

ANSWERS = {"ease": "4", "av_quality": "3", "listened": "4", "would_again": "true", "comment": "Très pratique"}


def finish(db_session, territory, clock, starts_at=dt.datetime(2026, 11, 23, 14, 0, tzinfo=PARIS)):
    """A visit of the territory carried to check-in, then done once the session has begun; the survey's token."""
    visit = factories.visit(db_session, territory, starts_at, state=AppointmentState.CHECKED_IN)
    clock.move_to(starts_at + dt.timedelta(minutes=20))
    completion.complete(db_session, territory.idel_user, visit)
    db_session.commit()
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == surveys.SURVEY_KIND))
    return visit, message


def test_a_done_session_sends_its_patient_a_link_without_health_data(db_session, territory, clock):
    visit, message = finish(db_session, territory, clock)
    assert (message.channel, message.recipient) == ("sms", territory.patient.phone)
    token = json.loads(message.payload)["survey_token"]
    survey = db_session.scalar(select(SatisfactionSurvey).where(SatisfactionSurvey.appointment_id == visit.id))
    assert survey.token_hash == surveys.token_hash(token) and token not in survey.token_hash
    assert survey.expires_at - survey.created_at == dt.timedelta(days=14)
    subject, body = render(message.kind, json.loads(message.payload), base_url="https://hub.example.org")
    assert f"https://hub.example.org/enquete/{token}" in body
    for health in ("cardio", "insuffisance", territory.patient.display_name, territory.cardiologist.last_name):
        assert health.lower() not in (subject + body).lower()


def test_the_patient_answers_once_without_an_account(auth, client, db_session, territory, clock):
    _visit, message = finish(db_session, territory, clock)
    url = f"/enquete/{json.loads(message.payload)['survey_token']}"
    page = client.get(url)
    assert page.status_code == 200 and "Votre avis sur votre séance à distance" in page.text
    assert "<script" not in page.text.split("</head>")[1], "the form works without JavaScript"
    missing = auth.post(url, {"ease": "4"})
    assert missing.status_code == 422 and "Choisissez une réponse." in missing.text
    assert db_session.scalar(select(SatisfactionSurvey.answered_at)) is None
    done = auth.post(url, ANSWERS)
    assert done.status_code == 200 and "Merci pour votre avis" in done.text
    survey = db_session.scalar(select(SatisfactionSurvey))
    db_session.refresh(survey)
    assert (survey.ease, survey.av_quality, survey.listened, survey.would_again) == (4, 3, 4, True)
    again = auth.post(url, ANSWERS | {"ease": "1"})
    assert again.status_code == 409 and surveys.ALREADY_ANSWERED in html.unescape(again.text)
    db_session.refresh(survey)
    assert survey.ease == 4
    assert surveys.ALREADY_ANSWERED in html.unescape(client.get(url).text)


def test_an_expired_or_unknown_link_says_why(auth, client, db_session, territory, clock):
    _visit, message = finish(db_session, territory, clock)
    url = f"/enquete/{json.loads(message.payload)['survey_token']}"
    clock.move_to(dt.datetime(2026, 12, 8, 15, 0, tzinfo=PARIS))
    assert surveys.EXPIRED in html.unescape(client.get(url).text)
    refused = auth.post(url, ANSWERS)
    assert refused.status_code == 422 and surveys.EXPIRED in html.unescape(refused.text)
    unknown = client.get("/enquete/nope")
    assert unknown.status_code == 404 and surveys.UNKNOWN in html.unescape(unknown.text)


def test_an_in_person_session_sends_no_survey(db_session, territory):
    row = factories.in_person_care(
        db_session, territory.patient, territory.idel, dt.date(2026, 11, 10), created_by=territory.coordinator
    )
    assert row.kind is AppointmentKind.IN_PERSON
    assert surveys.invite(db_session, row) is None
    assert db_session.scalar(select(SatisfactionSurvey)) is None
