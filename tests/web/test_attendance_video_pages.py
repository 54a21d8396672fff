"""« Visio et présences » on the session pages (the IDEL's visit, the specialist's « Ma séance », the coordination's
appointment), the attendance form, « À reprogrammer » with its one-click booking, the program's video tool, and
the patient's public link /visio/<token>."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from hub.models import (
    AppointmentState,
    AuditEvent,
    OutboxMessage,
    Profession,
    ReferralState,
    Role,
    SessionProgram,
    VideoRoom,
)
from tests import factories
from tests.factories import MONDAY_14H, PARIS, PROGRAM_FORM
from tests.web.test_visits_pages import field_error, text
from workflows import attendance, video

S = AppointmentState
pytestmark = pytest.mark.usefixtures("clock")
TODAY_14H = dt.datetime(2026, 11, 16, 14, 0, tzinfo=PARIS)
TEMPLATE = "https://visio.example.fr/salle/{room}"


@pytest.fixture
def todays_visit(db_session, territory):
    """Today's assisted teleconsultation at 14:00 in a program that names its video tool, confirmed by the IDEL."""
    territory.program.video_url_template = TEMPLATE
    visit = factories.visit(db_session, territory, TODAY_14H, state=S.CONFIRMED)
    db_session.commit()
    return visit


def _room(db_session, visit) -> str:
    return db_session.scalar(select(VideoRoom.room).where(VideoRoom.appointment_id == visit.id))


def _page_at(auth, clock, user, moment, url) -> str:
    """The page as the user sees it at that moment (logged in again: hours later the session has timed out)."""
    clock.move_to(moment)
    auth.login(user)
    return text(auth.client.get(url))


def test_the_idel_sees_the_video_button_only_around_the_session(auth, db_session, territory, todays_visit, clock):
    url, idel, button = f"/visits/{todays_visit.id}", territory.idel_user, 'href="https://visio.example.fr/salle/'
    page = _page_at(auth, clock, idel, TODAY_14H - dt.timedelta(minutes=15, seconds=1), url)
    assert "Visio et présences" in page and button not in page
    assert "apparaîtra ici à partir du lundi 16 novembre 2026, 13 h 45" in page
    page = _page_at(auth, clock, idel, TODAY_14H - dt.timedelta(minutes=15), url)
    assert f'{button}{_room(db_session, todays_visit)}"' in page and ">Rejoindre la visio<" in page
    # The 15-minute session and its 15-minute margin are over.
    assert button not in _page_at(auth, clock, idel, TODAY_14H + dt.timedelta(minutes=30), url)


def test_the_idel_sends_the_patient_link_and_the_patient_opens_it_in_its_window(
    auth, db_session, client, territory, todays_visit, clock
):
    auth.login(territory.idel_user)
    sent = auth.post(f"/visits/{todays_visit.id}/video-link")
    assert sent.status_code == 302 and sent.headers["Location"] == f"/visits/{todays_visit.id}"
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == video.KIND))
    token = json.loads(message.payload)["video_token"]
    assert "Envoyé le" in text(auth.client.get(f"/visits/{todays_visit.id}"))

    auth.client.get("/logout")
    early = client.get(f"/visio/{token}")
    assert early.status_code == 403
    assert "Le lien s'ouvre 15 minutes avant la séance : revenez à partir du lundi 16 novembre 2026, 13 h 45" in text(
        early
    )
    clock.move_to(TODAY_14H - dt.timedelta(minutes=15))
    opened = client.get(f"/visio/{token}")
    assert opened.status_code == 302
    assert opened.headers["Location"] == f"https://visio.example.fr/salle/{_room(db_session, todays_visit)}"
    clock.move_to(TODAY_14H + dt.timedelta(minutes=30))
    late = client.get(f"/visio/{token}")
    assert late.status_code == 403 and "Cette séance est terminée" in text(late)
    assert client.get(f"/visio/{token}x").status_code == 404
    outcomes = db_session.scalars(
        select(AuditEvent.outcome).where(AuditEvent.action == "video.open").order_by(AuditEvent.id)
    ).all()
    assert outcomes == ["refused", "success", "refused", "denied"]


def test_the_idel_records_the_patient_absent_after_the_start(auth, db_session, territory, todays_visit, clock):
    url = f"/visits/{todays_visit.id}/attendance"
    auth.login(territory.idel_user)
    assert f'href="{url}"' in text(auth.client.get(f"/visits/{todays_visit.id}"))
    assert "se notent après l'heure de début" in text(auth.client.get(url))
    assert "attendance-form" not in text(auth.client.get(f"/visits/{todays_visit.id}")), "not before the start"
    clock.move_to(TODAY_14H + dt.timedelta(minutes=10))
    auth.login(territory.idel_user)
    visit_page = text(auth.client.get(f"/visits/{todays_visit.id}"))
    assert f'<form method="post" action="{url}" class="border rounded p-2 mb-2 attendance-form">' in visit_page
    assert 'name="accompanying" value="0"' in visit_page
    refused = auth.post(url, {"patient": "0", "accompanying": "1"})
    assert refused.status_code == 422 and field_error(text(refused), "performer") == "Répondez oui ou non."
    db_session.refresh(todays_visit)
    assert todays_visit.state is S.CONFIRMED
    done = auth.post(url, {"patient": "0", "accompanying": "1", "performer": "1", "note": "Porte close"})
    assert done.headers["Location"] == url, "not a login redirect"
    assert done.status_code == 302 and done.headers["Location"] == url
    assert "absence du patient notée" in text(auth.client.get(url))
    db_session.refresh(todays_visit)
    assert todays_visit.state is S.NO_SHOW


def test_a_performer_absence_goes_to_the_coordination_to_book_again_in_one_click(
    auth, db_session, territory, todays_visit, clock
):
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))
    auth.login(territory.idel_user)
    posted = auth.post(f"/visits/{todays_visit.id}/attendance", {"patient": "1", "accompanying": "1", "performer": "0"})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/attendance")
    free = factories.slot(db_session, territory.program, MONDAY_14H.astimezone(dt.UTC))
    db_session.commit()

    auth.login(territory.coordinator)
    home = text(auth.client.get("/"))
    assert "À reprogrammer" in home and "1</span> séance à reprogrammer" in home
    assert f'href="/planning/to-reschedule#reprogrammer-{todays_visit.id}"' in home
    listing = text(auth.client.get("/planning/to-reschedule"))
    assert "Professionnel absent : séance reportée" in listing and territory.patient.display_name in listing
    booking_url = f"/planning/slots/{free.id}/book?patient_id={territory.patient.id}"
    assert f'href="{booking_url.replace("&", "&amp;")}"' in auth.client.get("/planning/to-reschedule").get_data(
        as_text=True
    )
    form = auth.client.get(booking_url).get_data(as_text=True)
    assert f'value="{territory.patient.id}"' in form
    checked = form.split(f'value="{territory.patient.id}"', 1)[1].split(">", 1)[0]
    assert "checked" in checked, "the patient comes chosen"
    appointment_page = text(auth.client.get(f"/planning/appointments/{todays_visit.id}"))
    assert "Reportée — absence du professionnel" in appointment_page and "professionnel absent" in appointment_page


def test_the_program_form_takes_only_an_https_tool_with_its_room(auth, db_session, territory):
    auth.login(territory.coordinator)
    form = {**PROGRAM_FORM, "performer_id": territory.cardiologist.id}
    refused = auth.post("/planning/programs/new", form | {"video_url_template": "http://visio.example.fr/{room}"})
    assert refused.status_code == 422
    assert field_error(text(refused), "video_url_template") == video.TEMPLATE_HTTPS
    created = auth.post("/planning/programs/new", form | {"video_url_template": TEMPLATE})
    assert created.status_code == 302
    program = db_session.get(SessionProgram, int(created.headers["Location"].rsplit("/", 1)[1]))
    assert program.video_url_template == TEMPLATE
    assert f'value="{TEMPLATE}"' in text(auth.client.get(f"/planning/programs/{program.id}/edit"))


def test_the_specialist_records_attendance_and_joins_from_ma_seance(auth, db_session, territory, todays_visit, clock):
    specialist = factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)
    factories.save_checklist(db_session, territory.idel_user, todays_visit)
    factories.check_in(db_session, territory.idel_user, todays_visit)
    db_session.commit()
    page = _page_at(auth, clock, specialist, TODAY_14H + dt.timedelta(minutes=1), "/reports/session?day=2026-11-16")
    assert ">Rejoindre la visio<" in page and "attendance-form" in page
    posted = auth.post(f"/visits/{todays_visit.id}/attendance", {"patient": "1", "accompanying": "0", "performer": "1"})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/attendance")
    row = attendance.attendance_of(db_session, todays_visit)
    assert (row.recorded_by_user_id, row.is_accompanying_present) == (specialist.id, False)

    auth.login(territory.coordinator)
    review = text(auth.client.get("/indicateurs?year=2026&month=11"))
    assert "Absences et annulations tardives" in review and "Accompagnant·e absent·e" in review


def test_a_link_that_cannot_be_sent_says_why_on_the_page(auth, db_session, territory, todays_visit):
    territory.patient.phone = territory.patient.email = None
    db_session.commit()
    auth.login(territory.coordinator)
    refused = auth.post(f"/visits/{todays_visit.id}/video-link")
    assert refused.status_code == 302 and refused.headers["Location"] == f"/planning/appointments/{todays_visit.id}"
    assert video.NO_CONTACT in text(auth.client.get(refused.headers["Location"]))
    assert db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == video.KIND)) is None


def test_a_referrals_postponed_session_is_scheduled_again_from_the_referral(
    auth, db_session, territory, todays_visit, clock
):
    gp = factories.clinician(db_session, territory.cpts, Profession.GENERAL_PRACTITIONER)
    referral = factories.referral(
        db_session,
        territory.patient,
        author=gp,
        state=ReferralState.SCHEDULED,
        appointment_id=todays_visit.id,
        target_program_id=territory.program.id,
    )
    db_session.commit()
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))
    auth.login(territory.coordinator)
    answers = {"patient": "1", "accompanying": "1", "performer": "0"}
    assert auth.post(f"/visits/{todays_visit.id}/attendance", answers).status_code == 302
    listing = text(auth.client.get("/planning/to-reschedule"))
    assert f'href="/referrals/{referral.id}">Programmer à nouveau son adressage' in listing
    page = text(auth.client.get(f"/referrals/{referral.id}"))
    assert 'id="programmer">Programmer</h2>' in page, "back « à programmer »: its page schedules it"
