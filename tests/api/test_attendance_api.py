"""Attendance and the video link through the API: POST/GET /appointments/<id>/attendance, GET …/video for the
participants, POST …/video/patient-link, and the programs' video tool; problem+json for bad input, 404 (audited)
to a stranger, nothing changed."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from hub.models import AppointmentState, OutboxMessage, VideoRoom
from tests import factories
from tests.api.test_patients_api import assert_problem, last_audit
from tests.api.test_scheduling_api import PROGRAM
from tests.factories import PARIS
from workflows import attendance, video

S = AppointmentState
pytestmark = pytest.mark.usefixtures("clock")
TODAY_14H = dt.datetime(2026, 11, 16, 14, 0, tzinfo=PARIS)
TEMPLATE = "https://visio.example.fr/salle/{room}"


@pytest.fixture
def todays_visit(db_session, territory):
    territory.program.video_url_template = TEMPLATE
    visit = factories.visit(db_session, territory, TODAY_14H, state=S.CONFIRMED)
    db_session.commit()
    return visit


def test_the_idel_records_and_reads_the_attendance(api_as, db_session, territory, todays_visit, clock):
    url = f"/api/v1/appointments/{todays_visit.id}/attendance"
    idel = api_as(territory.idel_user)
    assert idel.get(url).get_json() == {
        "appointment_id": todays_visit.id,
        "state": "confirmed",
        "has_accompanying": True,
        "recorded": False,
        "patient": None,
        "accompanying": None,
        "performer": None,
        "note": None,
        "recorded_at": None,
    }
    body = assert_problem(idel.post(url, json={"patient": True, "accompanying": True, "performer": True}), 422)
    assert "après l'heure de début" in body["detail"]
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))
    recorded = idel.post(
        url, json={"patient": True, "accompanying": False, "performer": True, "note": "IDEL en retard"}
    )
    assert recorded.status_code == 200, recorded.get_json()
    expected = {"recorded": True, "patient": True, "accompanying": False, "performer": True, "note": "IDEL en retard"}
    assert expected.items() <= recorded.get_json().items()
    assert idel.get(url).get_json()["recorded_at"] == factories.now().isoformat()
    assert (last_audit(db_session).action, last_audit(db_session).target_id) == (
        "appointment.attendance_read",
        str(todays_visit.id),
    )


def test_bad_input_is_a_problem_and_changes_nothing(api_as, db_session, territory, todays_visit, clock):
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))
    url = f"/api/v1/appointments/{todays_visit.id}/attendance"
    coordinator = api_as(territory.coordinator)
    body = assert_problem(coordinator.post(url, json={"accompanying": True, "performer": True}), 422)
    assert body["errors"] == {"patient": "Répondez oui ou non."}
    body = assert_problem(coordinator.post(url, json={"patient": True, "performer": True, "state": "done"}), 422)
    assert "state" in body["errors"]
    body = assert_problem(coordinator.post(url, json={"patient": True, "performer": True}), 422)
    assert body["errors"] == {"accompanying": attendance.SAY_ACCOMPANYING}
    db_session.expire_all()
    assert attendance.attendance_of(db_session, todays_visit) is None


def test_a_stranger_gets_an_audited_404(api_as, db_session, territory, todays_visit, clock):
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))
    other = api_as(territory.other_idel_user)
    url = f"/api/v1/appointments/{todays_visit.id}"
    assert_problem(other.post(f"{url}/attendance", json={"patient": False, "performer": True}), 404)
    assert (last_audit(db_session).action, last_audit(db_session).outcome) == ("appointment.attendance", "denied")
    for path in ("attendance", "video"):
        assert_problem(other.get(f"{url}/{path}"), 404)
    db_session.refresh(todays_visit)
    assert todays_visit.state is S.CONFIRMED


def test_the_video_link_for_the_participants_around_the_session(api_as, db_session, territory, todays_visit, clock):
    url = f"/api/v1/appointments/{todays_visit.id}/video"
    before = api_as(territory.idel_user).get(url).get_json()
    assert (before["status"], before["url"]) == ("before", None)
    assert before["opens_at"] == (TODAY_14H - dt.timedelta(minutes=15)).astimezone(dt.UTC).isoformat()
    clock.move_to(TODAY_14H - dt.timedelta(minutes=15))
    room = db_session.scalar(select(VideoRoom.room).where(VideoRoom.appointment_id == todays_visit.id))
    during = api_as(territory.idel_user).get(url).get_json()
    assert (during["status"], during["url"]) == ("open", f"https://visio.example.fr/salle/{room}")
    assert_problem(api_as(territory.coordinator).get(url), 404)  # the room is for those who take part


def test_the_coordination_sends_the_patient_link(api_as, db_session, territory, todays_visit):
    sent = api_as(territory.coordinator).post(f"/api/v1/appointments/{todays_visit.id}/video/patient-link")
    assert sent.status_code == 200 and sent.get_json()["patient_link_sent_at"] == factories.now().isoformat()
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == video.KIND))
    assert set(json.loads(message.payload)) == {
        "recipient_kind",
        "local_date",
        "local_time",
        "video_token",
        "opens_minutes",
    }
    body = assert_problem(
        api_as(territory.coordinator).post(
            f"/api/v1/appointments/{todays_visit.id}/video/patient-link", json={"url": "https://evil.example"}
        ),
        422,
    )
    assert "url" in body["errors"]


def test_a_program_names_its_video_tool(api_as, db_session, territory):
    coordinator = api_as(territory.coordinator)
    program = PROGRAM | {"performer_id": territory.cardiologist.id}
    body = assert_problem(
        coordinator.post("/api/v1/programs", json=program | {"video_url_template": "https://x.fr/{patient}"}), 422
    )
    assert body["errors"] == {"video_url_template": video.TEMPLATE_PLACEHOLDER}
    created = coordinator.post("/api/v1/programs", json=program | {"video_url_template": TEMPLATE})
    assert created.status_code == 201 and created.get_json()["video_url_template"] == TEMPLATE
    program_id = created.get_json()["id"]
    changed = coordinator.patch(
        f"/api/v1/programs/{program_id}", json={"video_url_template": "https://visio2.example.fr/{room}"}
    )
    assert changed.status_code == 200, changed.get_json()
    assert coordinator.get(f"/api/v1/programs/{program_id}").get_json()["video_url_template"] == (
        "https://visio2.example.fr/{room}"
    )
