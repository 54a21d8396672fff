"""Attendance and the video link on a phone (390 px): the patient's link, sent without health data, says when it
opens and then leads to the structure's video tool; at the session's time the IDEL sees « Rejoindre la visio » on
her visit's page and notes who was there — the patient did not come. axe-core and no horizontal scroll on every page.

The journey books its own Thursday visit in a program of its own that names a video tool, accompanied by a demo IDEL
other than the one of Monday's session, so that it neither depends on nor changes what the other journeys read."""

import datetime as dt
import json
import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from hub.models import Appointment, AppointmentState, Organisation, OutboxMessage, Profession, Professional, User
from tests import factories
from tests.browser.support import PHONE, assert_no_horizontal_scroll, check_axe
from workflows import appointments, video

THURSDAY_10H = dt.datetime(2026, 11, 19, 10, 0, tzinfo=factories.PARIS)
TEMPLATE = "https://visio.example.fr/salle/{room}"


@dataclass(frozen=True)
class Session:
    login: str
    appointment_id: int
    link: str


@pytest.fixture
def thursday_session(sessions, people) -> Session:
    """A confirmed Thursday 10:00 teleconsultation in a program with a video tool, its checklist saved, and the
    patient's link sent (the token read back from the outbox message)."""
    with sessions.begin() as session:
        monday_idel = session.scalars(select(User.professional_id).where(User.login == people.idel)).one()
        idel = session.scalars(
            select(Professional)
            .join(User, User.professional_id == Professional.id)
            .where(
                Professional.profession == Profession.NURSE,
                Professional.accompanies_teleconsultation.is_(True),
                Professional.is_active.is_(True),
                Professional.id != monday_idel,
            )
            .order_by(Professional.id)
        ).first()
        assert idel is not None, "the demo has more than one IDEL"
        idel_user = session.scalars(select(User).where(User.professional_id == idel.id)).one()
        coordinator = session.scalars(select(User).where(User.login == people.coordinator)).one()
        cpts = session.get_one(Organisation, idel.cpts_id)
        patient = factories.consenting_patient(session, cpts, recorded_by=coordinator, phone="0611223344")
        factories.in_care_team(session, patient, idel)
        cardiologist = factories.professional(session, cpts, Profession.SPECIALIST, last_name="Castaing")
        program = factories.program(
            session, cpts, performer=cardiologist, name="Visio cardiologie du jeudi", video_url_template=TEMPLATE
        )
        slot = factories.slot(session, program, THURSDAY_10H.astimezone(dt.UTC))
        visit = appointments.book(
            session, coordinator, slot=slot, patient=patient, place_kind=appointments.default_place(program)
        )
        appointments.confirm(session, idel_user, visit)
        factories.save_checklist(session, idel_user, visit)
        video.send_patient_link(session, coordinator, visit)
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.startswith(f"{video.KIND}:{visit.id}:"))
        ).one()
        token = json.loads(message.payload)["video_token"]
        return Session(login=idel_user.login, appointment_id=visit.id, link=f"/visio/{token}")


def checked(page, shoot, label: str) -> None:
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, label)


def test_the_link_opens_around_the_session_and_the_idel_notes_the_patient_absent(
    page_at, sessions, thursday_session, clock, shoot
):
    patient_page = page_at(PHONE)
    patient_page.goto(thursday_session.link)
    expect(patient_page.get_by_role("status")).to_contain_text(
        "Le lien s'ouvre 15 minutes avant la séance : revenez à partir du jeudi 19 novembre 2026, 9 h 45."
    )
    checked(patient_page, shoot, "lien du patient trop tot")
    clock.move_to(THURSDAY_10H - dt.timedelta(minutes=15))
    opened = patient_page.request.get(thursday_session.link, max_redirects=0)
    assert opened.status == 302 and opened.headers["location"].startswith("https://visio.example.fr/salle/")

    clock.move_to(THURSDAY_10H + dt.timedelta(minutes=5))
    page = page_at(PHONE, thursday_session.login, log_in_again=True)
    page.goto(f"/visits/{thursday_session.appointment_id}")
    expect(page.get_by_role("link", name=re.compile("Rejoindre la visio"))).to_have_attribute(
        "href", opened.headers["location"]
    )
    form = page.locator("form.attendance-form")
    form.get_by_role("group", name="Patient").get_by_label("absent·e").check()
    form.get_by_role("group", name="Accompagnant·e").get_by_label("présent·e").check()
    form.get_by_role("group", name="Professionnel").get_by_label("présent·e").check()
    checked(page, shoot, "presences a noter")
    form.get_by_role("button", name=re.compile("Enregistrer les présences")).click()
    expect(page.get_by_role("status").first).to_contain_text("absence du patient notée")
    checked(page, shoot, "presences notees")

    with sessions() as session:
        visit = session.get_one(Appointment, thursday_session.appointment_id)
        assert visit.state is AppointmentState.NO_SHOW
