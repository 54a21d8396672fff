"""A pathway's steps booked as a series (item 5): each planned step gets the first free slot of its modality and
profession from its due date, every step is checked at once and each conflict named before anything is saved;
then all or nothing (409, nothing saved) or the free ones. Through the API and the page."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import Appointment, CarePathway, PathwayTemplate, PlaceKind, StepState
from scheduling.slots import generate_slots
from tests import factories
from tests.api.test_patients_api import assert_problem
from workflows import appointments, pathways


def heart_failure_template(session) -> PathwayTemplate:
    shipped = (PathwayTemplate.cpts_id.is_(None), PathwayTemplate.code == "insuffisance_cardiaque")
    return session.scalars(select(PathwayTemplate).where(*shipped)).one()


@pytest.fixture
def heart_failure(db_session, territory):
    """The heart failure pathway of the territory's patient, started today: two assisted cardiology
    teleconsultations to book (at 14 days, then the 3-month follow-up), the cardiologist's weekly program open."""
    territory.program.horizon_weeks = 30
    generate_slots(db_session, territory.program, now=utcnow())
    template = heart_failure_template(db_session)
    pathway = pathways.start(
        db_session, territory.coordinator, patient=territory.patient, template=template, started_on=utcnow().date()
    )
    db_session.commit()
    return pathway


def booked_count(session, patient) -> int:
    return session.scalar(select(func.count()).select_from(Appointment).where(Appointment.patient_id == patient.id))


def test_the_check_proposes_a_slot_for_each_remote_step_and_saves_nothing(api_as, db_session, territory, heart_failure):
    client = api_as(territory.coordinator)
    plan = client.post(f"/api/v1/pathways/{heart_failure.id}/schedule/check", json={}).get_json()
    names = [s["name"] for s in plan["steps"]]
    assert names == ["Téléconsultation cardiologique assistée", "Suivi à 3 mois en téléconsultation assistée"]
    assert (plan["free"], plan["conflicting"]) == (2, 0)
    for step, proposed in zip(
        [s for s in heart_failure.steps if s.modality.value == "assisted_teleconsultation"], plan["steps"], strict=True
    ):
        starts = dt.datetime.fromisoformat(proposed["starts_at"])
        assert starts.date() >= step.due_on - dt.timedelta(days=7)
    assert booked_count(db_session, territory.patient) == 0


def test_a_conflicting_step_is_named_all_or_nothing_saves_nothing_and_the_free_ones_book(
    api_as, db_session, territory, heart_failure
):
    client = api_as(territory.coordinator)
    url = f"/api/v1/pathways/{heart_failure.id}/schedule"
    follow_up = client.post(f"{url}/check", json={}).get_json()["steps"][1]
    # The patient is elsewhere at the time proposed for the follow-up.
    elsewhere = factories.program(db_session, territory.cpts, name="Consultation mémoire")
    busy = factories.slot(db_session, elsewhere, dt.datetime.fromisoformat(follow_up["starts_at"]))
    appointments.book(
        db_session,
        territory.coordinator,
        slot=busy,
        patient=territory.patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=territory.other_idel,
    )
    db_session.commit()
    before = booked_count(db_session, territory.patient)
    plan = client.post(f"{url}/check", json={}).get_json()
    assert [s["problems"] for s in plan["steps"]] == [[], ["patient déjà en séance"]]
    refused = assert_problem(client.post(url, json={}), 409)
    assert "« Suivi à 3 mois en téléconsultation assistée » : patient déjà en séance" in refused["detail"]
    assert [s["step_id"] for s in refused["steps"]] == [follow_up["step_id"]]
    assert booked_count(db_session, territory.patient) == before
    done = client.post(url, json={"all_or_nothing": False})
    assert done.status_code == 201, done.get_json()
    assert len(done.get_json()["booked"]) == 1 and [s["name"] for s in done.get_json()["left_out"]] == [
        "Suivi à 3 mois en téléconsultation assistée"
    ]
    db_session.expire_all()
    states = [s.state for s in db_session.get(CarePathway, heart_failure.id).steps if s.modality.value != "in_person"]
    assert states == [StepState.BOOKED, StepState.PLANNED]


def test_the_page_shows_the_plan_and_books_the_free_steps(auth, db_session, territory, heart_failure):
    auth.login(territory.coordinator)
    record = auth.client.get(f"/patients/{territory.patient.id}").get_data(as_text=True)
    url = f"/parcours/{heart_failure.id}/programmer-les-etapes"
    assert f'href="{url}"' in record
    page = auth.client.get(url).get_data(as_text=True)
    assert "Suivi à 3 mois en téléconsultation assistée" in page and "Programmer les étapes libres" in page
    assert booked_count(db_session, territory.patient) == 0
    response = auth.post(url, {"all_or_nothing": "y"})
    assert response.status_code == 302
    assert booked_count(db_session, territory.patient) == 2


def test_a_stranger_coordinator_meets_an_audited_404(api_as, db_session, territory, heart_failure):
    other = factories.cpts(db_session, "CPTS voisine")
    stranger = factories.coordinator(db_session, other)
    db_session.commit()
    assert_problem(api_as(stranger).post(f"/api/v1/pathways/{heart_failure.id}/schedule/check", json={}), 404)


def test_a_patient_not_eligible_is_told_before_any_step(api_as, db_session, territory, newcomer):
    template = heart_failure_template(db_session)
    pathway = pathways.start(
        db_session, territory.coordinator, patient=newcomer, template=template, started_on=utcnow().date()
    )
    db_session.commit()
    refused = assert_problem(
        api_as(territory.coordinator).post(f"/api/v1/pathways/{pathway.id}/schedule/check", json={}), 422
    )
    assert "steps" not in refused
