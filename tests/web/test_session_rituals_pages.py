"""« Rituels de la séance »: the kiné reaches the form from « Mes visites », records the six rituals of the télésoin
session under way, cannot end it before (the refusal names what is missing), and finds them in the report form."""

import datetime as dt
import html
import re

import pytest

from hub.models import AppointmentState
from tests import factories
from tests.factories import PARIS
from tests.web.test_visits_pages import field_error, text

pytestmark = pytest.mark.usefixtures("clock")

TODAY_14H = dt.datetime(2026, 11, 16, 14, 0, tzinfo=PARIS)
FORM = {
    "opening_brief": "true",
    "telesoin_consent": "true",
    "safety_privacy": "true",
    "prom_1_name": "EVA douleur",
    "prom_1_value": "6/10",
    "stop_criteria": "Douleur au-delà de 7/10",
    "teach_back": "true",
    "structured_feedback": "true",
    "plan": "Exercices d'équilibre chaque matin",
    "reinforcement_message": "true",
}


@pytest.fixture
def todays_session(db_session, territory, kine, auth, clock):
    session = factories.telesoin_session(db_session, territory, performer=kine.professional, starts_at=TODAY_14H)
    db_session.commit()
    clock.move_to(TODAY_14H + dt.timedelta(minutes=5))  # under way: the session can end once its rituals are done
    auth.login(kine)
    return session


def test_the_kine_records_the_rituals_from_mes_visites_then_ends_the_session(auth, db_session, todays_session):
    url = f"/visits/{todays_session.id}/rituals"
    assert f'href="{url}"' in text(auth.client.get("/visits"))

    refused = auth.post(f"/visits/{todays_session.id}/complete")
    assert refused.status_code == 422
    assert "il manque le brief d'ouverture (agenda, durée, objectifs) ; le consentement spécifique" in text(refused)

    form = text(auth.client.get(url))
    assert "1. Brief d'ouverture" in form and "6. Clôture" in form and "PROM 2 : valeur mesurée" in form
    partial = {name: value for name, value in FORM.items() if name != "plan"}
    saved = auth.post(url, partial)
    assert saved.status_code == 302 and saved.headers["Location"] == url
    page = text(auth.client.get(url))
    assert "Rituels enregistrés. Pour terminer la séance, il manque encore le plan avant J+7." in page
    assert 'value="EVA douleur"' in page, "the form shows what is recorded"
    assert auth.post(f"/visits/{todays_session.id}/complete").status_code == 422

    assert auth.post(url, FORM).status_code == 302
    assert "les six sont faits" in text(auth.client.get(url))
    assert auth.post(f"/visits/{todays_session.id}/complete").status_code == 302
    db_session.refresh(todays_session)
    assert todays_session.state is AppointmentState.DONE


def test_a_prom_without_its_value_is_shown_again_and_nothing_is_kept(auth, db_session, todays_session):
    refused = auth.post(f"/visits/{todays_session.id}/rituals", FORM | {"prom_1_value": ""})
    assert refused.status_code == 422
    body = text(refused)
    assert field_error(body, "prom_1_value") == "Indiquez la valeur mesurée."
    assert 'value="EVA douleur"' in body and 'href="#f-prom_1_value"' in body
    ids = re.findall(r' id="([^"]+)"', body)
    assert len(ids) == len(set(ids)), "every id of the page is unique"
    db_session.refresh(todays_session)
    assert todays_session.rituals is None


def test_the_report_form_shows_the_rituals_it_will_carry(auth, db_session, todays_session):
    assert auth.post(f"/visits/{todays_session.id}/rituals", FORM).status_code == 302
    assert auth.post(f"/visits/{todays_session.id}/complete").status_code == 302
    assert f'id="rdv-{todays_session.id}"' in text(auth.client.get("/reports/session"))
    started = auth.post(f"/reports/start/{todays_session.id}")
    assert started.status_code == 302
    form = html.unescape(auth.client.get(started.headers["Location"]).get_data(as_text=True))
    assert "Rituels de la séance (ajoutés au compte rendu à la signature)" in form
    assert "Mesure initiale (PROMs)" in form and "EVA douleur : 6/10" in form


def test_no_rituals_for_another_session_and_none_recorded_by_others(auth, db_session, territory, todays_session):
    visit = factories.visit(db_session, territory, state=AppointmentState.CHECKED_IN)
    db_session.commit()
    auth.login(territory.idel_user)
    page = text(auth.client.get(f"/visits/{visit.id}/rituals"))
    assert "cette séance n'en a pas" in page and "Enregistrer les rituels" not in page
    assert auth.client.get(f"/visits/{todays_session.id}/rituals").status_code == 404
    auth.login(territory.coordinator)
    assert auth.client.get(f"/visits/{todays_session.id}/rituals").status_code == 404
    assert auth.post(f"/visits/{todays_session.id}/rituals", FORM).status_code == 404
    db_session.refresh(todays_session)
    assert todays_session.rituals is None
