"""The video link of a session (issue 16, item 4): the program's tool, a random room per session, the link shown to
the participants around the session only, the patient's hub link sent without health data and opening the room
only within its window."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from connectors.email import notice_text
from hub.errors import NotFound, RuleViolation, ValidationFailed
from hub.models import AppointmentState, AuditEvent, OutboxMessage, VideoRoom
from tests import factories
from tests.factories import MONDAY_14H
from workflows import appointments, programs, video

S = AppointmentState
pytestmark = pytest.mark.usefixtures("clock")
TEMPLATE = "https://visio.example.fr/salle/{room}"
HEALTH_WORDS = ("cardio", "spécialiste", "insuffisance", "Lemaitre", "télésoin", "kiné")


@pytest.fixture
def with_video(territory):
    territory.program.video_url_template = TEMPLATE
    return territory


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://visio.example.fr/salle/{room}", None),
        ("  https://visio.example.fr/s?id={room}&lang=fr  ", None),
        ("http://visio.example.fr/salle/{room}", video.TEMPLATE_HTTPS),
        ("https:///salle/{room}", video.TEMPLATE_HTTPS),
        ("https://{room}.example.fr/", video.TEMPLATE_HTTPS),
        ("javascript:alert(1)//{room}", video.TEMPLATE_HTTPS),
        ("https://visio.example.fr/salle/", video.TEMPLATE_PLACEHOLDER),
        ("https://visio.example.fr/{room}/{room}", video.TEMPLATE_PLACEHOLDER),
        ("https://visio.example.fr/{room}?p={patient}", video.TEMPLATE_BRACES),
        ("https://visio.example.fr/{room}}", video.TEMPLATE_BRACES),
        ("https://visio.example.fr/salle {room}", video.TEMPLATE_SPACES),
        ("https://visio.example.fr/" + "x" * 300 + "{room}", video.TEMPLATE_LENGTH),
    ],
)
def test_the_template_is_an_https_address_with_one_room_placeholder(template, problem):
    if problem is None:
        assert video.check_template(template) == template.strip()
        return
    with pytest.raises(ValidationFailed) as refused:
        video.check_template(template)
    assert refused.value.errors == {"video_url_template": problem}


def test_a_program_refuses_a_bad_template_and_gives_rooms_to_its_coming_sessions(db_session, territory):
    t = territory
    booked = factories.visit(db_session, t, state=S.CONFIRMED)
    assert db_session.scalar(select(VideoRoom).where(VideoRoom.appointment_id == booked.id)) is None
    with pytest.raises(ValidationFailed) as refused:
        programs.update_series(db_session, t.coordinator, t.program, {"video_url_template": "http://x/{room}"})
    assert set(refused.value.errors) == {"video_url_template"}
    programs.update_series(db_session, t.coordinator, t.program, {"video_url_template": TEMPLATE})
    assert db_session.scalar(select(VideoRoom).where(VideoRoom.appointment_id == booked.id)) is not None


def test_each_session_gets_its_own_random_room(db_session, with_video):
    t = with_video
    first = factories.visit(db_session, t, state=S.CONFIRMED)
    second = factories.visit(db_session, t, MONDAY_14H + dt.timedelta(days=7), state=S.CONFIRMED)
    rooms = [db_session.scalar(select(VideoRoom.room).where(VideoRoom.appointment_id == a.id)) for a in (first, second)]
    assert rooms[0] != rooms[1] and all(len(room) >= 20 for room in rooms)
    names = (t.patient.birth_name.lower(), t.patient.first_birth_given_name.lower())
    assert not any(name in room.lower() for name in names for room in rooms)


def test_the_participants_see_the_room_from_fifteen_minutes_before_to_fifteen_after(db_session, with_video):
    t = with_video
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    opens, closes = appointment.starts_at - dt.timedelta(minutes=15), appointment.ends_at + dt.timedelta(minutes=15)
    second = dt.timedelta(seconds=1)
    seen = {
        moment: video.access_for_participant(db_session, appointment, now=moment)
        for moment in (opens - second, opens, closes - second, closes)
    }
    assert [access.status for access in seen.values()] == ["before", "open", "open", "over"]
    assert seen[opens - second].url is None and seen[closes].url is None
    room = db_session.scalar(select(VideoRoom.room).where(VideoRoom.appointment_id == appointment.id))
    assert seen[opens].url == f"https://visio.example.fr/salle/{room}"
    assert seen[opens - second].opens_at == opens


def test_no_room_for_a_cancelled_session_nor_without_a_tool(db_session, territory):
    t = territory
    without_tool = factories.visit(db_session, t, state=S.CONFIRMED)
    assert video.access_for_participant(db_session, without_tool, now=without_tool.starts_at).status == "none"
    t.program.video_url_template = TEMPLATE
    cancelled = factories.visit(db_session, t, MONDAY_14H + dt.timedelta(days=7), state=S.CONFIRMED)
    appointments.cancel(db_session, t.coordinator, cancelled, reason="Empêchement", now=factories.NOW)
    assert video.access_for_participant(db_session, cancelled, now=cancelled.starts_at).status == "over"


def _sent(db_session) -> list[OutboxMessage]:
    return list(db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == video.KIND)))


def test_the_patients_link_says_date_time_and_link_and_nothing_of_health(db_session, with_video):
    t = with_video
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    video.send_patient_link(db_session, t.idel_user, appointment, now=factories.NOW)
    [message] = _sent(db_session)
    payload = json.loads(message.payload)
    token = payload["video_token"]
    assert (message.channel, message.recipient) == ("sms", "0612345678")
    room = db_session.scalar(select(VideoRoom).where(VideoRoom.appointment_id == appointment.id))
    assert room.patient_token_hash == video.token_hash(token) and token not in room.patient_token_hash
    text = notice_text(message.kind, payload, base_url="https://hub.example.fr")
    assert text == (
        "Votre téléconsultation le lundi 23 novembre 2026 à 14 h 00 : rejoignez-la par ce lien personnel "
        f"https://hub.example.fr/visio/{token} (il s'ouvre 15 minutes avant l'heure)."
    )
    assert not any(word.lower() in text.lower() for word in HEALTH_WORDS)
    assert t.program.name.lower() not in text.lower()
    assert "salle" not in text, "the room itself never travels"


def test_the_patients_link_opens_the_room_within_its_window_only(db_session, with_video):
    t = with_video
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    video.send_patient_link(db_session, t.coordinator, appointment, now=factories.NOW)
    token = json.loads(_sent(db_session)[0].payload)["video_token"]
    opens, closes = appointment.starts_at - dt.timedelta(minutes=15), appointment.ends_at + dt.timedelta(minutes=15)
    second = dt.timedelta(seconds=1)
    with pytest.raises(RuleViolation, match="s'ouvre 15 minutes avant la séance : revenez à partir du lundi 23"):
        video.open_patient_link(db_session, token, now=opens - second)
    room = db_session.scalar(select(VideoRoom.room).where(VideoRoom.appointment_id == appointment.id))
    assert video.open_patient_link(db_session, token, now=opens) == f"https://visio.example.fr/salle/{room}"
    assert video.open_patient_link(db_session, token, now=closes - second).endswith(room)
    with pytest.raises(RuleViolation, match="Cette séance est terminée"):
        video.open_patient_link(db_session, token, now=closes)
    with pytest.raises(NotFound):
        video.open_patient_link(db_session, token + "x", now=opens)
    db_session.commit()  # the audit rows are written at the commit
    opened = db_session.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "video.open")).all()
    assert sorted(opened) == ["refused", "refused", "success", "success"]


def test_sending_again_replaces_the_link(db_session, with_video):
    t = with_video
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    video.send_patient_link(db_session, t.coordinator, appointment, now=factories.NOW)
    video.send_patient_link(db_session, t.coordinator, appointment, now=factories.NOW)
    first, second = (json.loads(m.payload)["video_token"] for m in _sent(db_session))
    with pytest.raises(NotFound):
        video.open_patient_link(db_session, first, now=appointment.starts_at)
    assert video.open_patient_link(db_session, second, now=appointment.starts_at).startswith("https://visio.")


def test_a_session_that_will_not_take_place_neither_sends_nor_opens(db_session, with_video):
    t = with_video
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    video.send_patient_link(db_session, t.coordinator, appointment, now=factories.NOW)
    token = json.loads(_sent(db_session)[0].payload)["video_token"]
    appointments.cancel(db_session, t.coordinator, appointment, reason="Empêchement", now=factories.NOW)
    with pytest.raises(RuleViolation, match="n'aura pas lieu"):
        video.open_patient_link(db_session, token, now=appointment.starts_at)
    with pytest.raises(RuleViolation, match="n'a pas lieu"):
        video.send_patient_link(db_session, t.coordinator, appointment, now=factories.NOW)


def test_the_participants_of_a_group_slot_share_its_room(db_session, with_video):
    """A group session (several appointments in one slot, issue 16 item 2) is one room, each patient with their
    own link; another slot has another room."""
    t = with_video
    t.program.capacity = 2
    first = factories.visit(db_session, t, state=S.CONFIRMED)
    other_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    second = factories.appointment(
        db_session,
        patient_row=other_patient,
        performer=t.cardiologist,
        accompanying=t.other_idel,
        created_by=t.coordinator,
        starts_at=first.starts_at,
        slot_id=first.slot_id,
        program_id=t.program.id,
    )
    elsewhere = factories.visit(db_session, t, MONDAY_14H + dt.timedelta(days=7), state=S.CONFIRMED)
    rooms = {a.id: video.give_room(db_session, a).room for a in (first, second, elsewhere)}
    assert rooms[first.id] == rooms[second.id] != rooms[elsewhere.id]


def test_a_single_seat_booked_again_never_gets_the_cancelled_patients_room(db_session, with_video):
    """The first patient of a single-seat slot cancels; the next one booked into it gets a new room: the first may
    have opened the link and kept the address."""
    t = with_video
    first = factories.visit(db_session, t, state=S.CONFIRMED)
    room = video.give_room(db_session, first).room
    appointments.cancel(db_session, t.coordinator, first, reason="Hospitalisé", now=factories.NOW)
    other_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    second = factories.appointment(
        db_session,
        patient_row=other_patient,
        performer=t.cardiologist,
        accompanying=t.other_idel,
        created_by=t.coordinator,
        starts_at=first.starts_at,
        slot_id=first.slot_id,
        program_id=t.program.id,
    )
    assert video.give_room(db_session, second).room != room
