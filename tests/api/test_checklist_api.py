"""The HAS pre-session checklist through the API: saved complete, before the session starts, by the IDEL who runs
it (problem+json 422 naming the missing items, or after the start; 404 to anyone else), and the completion refused
before the start or without it, nothing changed."""

import datetime as dt

import pytest

from hub.models import AppointmentState
from tests import factories
from tests.api.test_patients_api import assert_problem, last_audit
from tests.factories import MONDAY_14H

pytestmark = pytest.mark.usefixtures("clock")

CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}


@pytest.fixture
def confirmed(db_session, territory):
    visit = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED)
    db_session.commit()
    return visit


def url(visit, verb: str) -> str:
    return f"/api/v1/appointments/{visit.id}/{verb}"


def test_an_incomplete_checklist_names_what_is_missing_and_saves_nothing(api_as, db_session, territory, confirmed):
    body = assert_problem(api_as(territory.idel_user).post(url(confirmed, "checklist"), json={"camera": True}), 422)
    assert body["errors"] == {
        "sound": "À cocher : son testé.",
        "light": "À cocher : éclairage suffisant.",
        "privacy": "À cocher : confidentialité assurée.",
    }
    db_session.refresh(confirmed)
    assert confirmed.checklist_saved_at is None and confirmed.checklist == "{}"


def test_a_minor_needs_the_adult_ticked(api_as, db_session, territory):
    child = factories.consenting_patient(
        db_session, territory.cpts, recorded_by=territory.coordinator, birth_date=dt.date(2015, 3, 2)
    )
    factories.in_care_team(db_session, child, territory.idel)
    visit = factories.visit(db_session, territory, state=AppointmentState.CONFIRMED, patient_row=child)
    db_session.commit()
    idel = api_as(territory.idel_user)
    body = assert_problem(idel.post(url(visit, "checklist"), json=CHECKLIST), 422)
    assert body["errors"] == {"adult_present": "Un adulte doit accompagner un patient mineur."}
    saved = idel.post(url(visit, "checklist"), json=CHECKLIST | {"adult_present": True})
    assert saved.status_code == 200 and saved.get_json()["checklist"]["adult_present"] is True


def test_saved_before_the_start_audited_then_refused_after_it(api_as, db_session, territory, confirmed, clock):
    idel = api_as(territory.idel_user)
    saved = idel.post(url(confirmed, "checklist"), json=CHECKLIST)
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["checklist_saved_at"] == factories.now().isoformat()
    event = last_audit(db_session)
    assert (event.action, event.target_id, event.actor_user_id) == (
        "appointment.checklist",
        str(confirmed.id),
        territory.idel_user.id,
    )
    clock.move_to(confirmed.ends_at)
    body = assert_problem(idel.post(url(confirmed, "checklist"), json=CHECKLIST), 422)
    assert "La séance est finie" in body["detail"]


def test_the_completion_waits_for_the_start_and_the_checklist(api_as, db_session, territory, confirmed, clock):
    idel = api_as(territory.idel_user)
    check_in = {"identity_method": "document", "patient_location": "Cabinet", "callback_phone": "0612345678"}
    assert idel.post(url(confirmed, "check-in"), json=check_in).status_code == 200
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=5))
    body = assert_problem(idel.post(url(confirmed, "complete")), 422)
    assert "n'a pas été enregistrée" in body["detail"]
    db_session.refresh(confirmed)
    assert confirmed.state is AppointmentState.CHECKED_IN


def test_nobody_else_saves_it(api_as, db_session, territory, confirmed):
    assert_problem(api_as(territory.other_idel_user).post(url(confirmed, "checklist"), json=CHECKLIST), 404)
    event = last_audit(db_session)
    assert (event.action, event.outcome) == ("appointment.checklist", "denied")
    proposed = factories.visit(db_session, territory, MONDAY_14H + dt.timedelta(days=7))
    db_session.commit()
    body = assert_problem(api_as(territory.idel_user).post(url(proposed, "checklist"), json=CHECKLIST), 409)
    assert body["detail"] == "Action impossible : le rendez-vous est « Proposé »."
