"""The patient's satisfaction survey from a phone (390 px), without an account and without JavaScript's help: the
link a done remote session sent, four questions and a comment, answered once; the same form sent a second time
from another tab is refused in French. axe-core finds nothing on either page."""

import datetime as dt
import json

from sqlalchemy import exists, select

from hub.models import Appointment, AppointmentKind, OutboxMessage, Patient, SatisfactionSurvey
from tests.browser.support import PHONE, assert_no_horizontal_scroll, check_axe
from workflows import surveys


def survey_link(sessions) -> str:
    """A survey of its own: sent now for a remote session of the demo that has none (the invitation adds a survey
    and its message, and changes nothing of the session that other journeys read)."""
    with sessions.begin() as session:
        appointment = session.scalars(
            select(Appointment)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.kind == AppointmentKind.ASSISTED_TELECONSULTATION,
                Patient.phone.is_not(None),
                ~exists().where(SatisfactionSurvey.appointment_id == Appointment.id),
            )
            .order_by(Appointment.id.desc())
        ).first()
        assert appointment is not None, "the demo has remote sessions"
        token = surveys.invite(session, appointment)
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.endswith(f":{appointment.id}"))
        ).one()
        assert json.loads(message.payload)["survey_token"] == token and message.channel == "sms"
    return f"/enquete/{token}"


def answer(page) -> None:
    page.get_by_role("group", name="La séance à distance a-t-elle été facile pour vous ?").get_by_label(
        "Très bien"
    ).check()
    page.get_by_role("group", name="Comment étaient l'image et le son ?").get_by_label("Plutôt bien").check()
    page.get_by_role("group", name="Vous êtes-vous senti·e écouté·e ?").get_by_label("Très bien").check()
    page.get_by_role("group", name="Referiez-vous une séance à distance ?").get_by_label("Oui").check()
    page.get_by_label("Un commentaire ?").fill("Simple, l'infirmière était là.")
    page.get_by_role("button", name="Envoyer mes réponses").click()


def test_the_patient_answers_the_survey_once_from_a_phone(page_at, sessions, clock, shoot):
    link = survey_link(sessions)
    clock.move_to(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    page = page_at(PHONE)
    page.goto(link)
    assert page.get_by_role("heading", name="Votre avis sur votre séance à distance").is_visible()
    check_axe(page)
    assert_no_horizontal_scroll(page)
    shoot(page, "enquete")
    second_tab = page.context.new_page()
    second_tab.set_viewport_size({"width": PHONE, "height": 844})
    second_tab.goto(link)

    page.get_by_role("button", name="Envoyer mes réponses").click()
    assert page.get_by_text("Choisissez une réponse.").first.is_visible(), "nothing chosen: said next to each question"
    answer(page)
    assert page.get_by_role("heading", name="Merci pour votre avis").is_visible()
    check_axe(page)
    shoot(page, "merci")

    answer(second_tab)
    refusal = second_tab.get_by_role("status")
    assert "déjà reçu une réponse" in refusal.inner_text()
    check_axe(second_tab)
    assert_no_horizontal_scroll(second_tab)
    shoot(second_tab, "deuxieme reponse refusee")
    with sessions() as session:
        survey = session.scalars(select(SatisfactionSurvey).where(SatisfactionSurvey.answered_at.is_not(None))).all()
        assert [(s.ease, s.av_quality, s.listened, s.would_again) for s in survey][-1:] == [(4, 3, 4, True)]
