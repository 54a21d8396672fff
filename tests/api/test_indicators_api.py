"""GET /api/v1/indicators: the page's figures as JSON, with the same filters; amounts as decimal strings; a bad
filter is a 4xx problem; the coordination only."""

import pytest

from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.workflows.test_indicators import play_december


@pytest.fixture
def december(db_session, territory):
    month = play_december(db_session, territory)
    db_session.commit()
    return month


def test_the_month_as_json(api_as, territory, december):
    answer = api_as(territory.coordinator).get("/api/v1/indicators?year=2026&month=12")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["year"], body["month"], body["program_id"]) == (2026, 12, None)
    found = {indicator["key"]: indicator for indicator in body["indicators"]}
    assert len(found) == 13 and all(indicator["how"] for indicator in found.values())
    assert found["seances_par_mois"]["rows"][-1] == ["Toute la CPTS", 9, 4, 1, 1, 1, 1]
    assert found["honoraires_par_code"]["rows"][-1] == ["Toute la CPTS", 5, "510.00"]
    assert found["delais"]["rows"][2] == ["Comptes rendus envoyés dans leur délai (%)", 3, 33.3]


def test_the_program_filter(api_as, territory, december):
    url = f"/api/v1/indicators?year=2026&month=12&program_id={december.kine_program.id}"
    body = api_as(territory.coordinator).get(url).get_json()
    assert body["program_name"] == "Télésoin kiné"
    assert body["indicators"][0]["rows"][-1] == ["Toute la CPTS", 2, 1, 0, 0, 0, 0]


def test_bad_filters_and_others_are_refused(api_as, db_session, territory):
    coordinator = api_as(territory.coordinator)
    assert "month" in assert_problem(coordinator.get("/api/v1/indicators?month=13"), 422)["errors"]
    other = factories.program(db_session, factories.cpts(db_session))
    db_session.commit()
    body = assert_problem(coordinator.get(f"/api/v1/indicators?program_id={other.id}"), 404)
    assert body["detail"] == "Programme inconnu dans cette CPTS."
    assert_problem(api_as(territory.idel_user).get("/api/v1/indicators"), 403)
