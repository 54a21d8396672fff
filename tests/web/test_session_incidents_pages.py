"""« Incidents de la séance » and « Incidents des séances »: the accompanying IDEL or the performer declares an
incident from the session's pages, during or after it; an EIG alerts the coordination, whose list puts it first."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AppointmentState, OutboxMessage, Role, SessionIncident
from tests import factories
from tests.factories import PARIS
from tests.web.test_visits_pages import field_error, text

pytestmark = pytest.mark.usefixtures("clock")

TODAY_14H = dt.datetime(2026, 11, 16, 14, 0, tzinfo=PARIS)
EIG = {"kind": "serious_adverse_event", "description": "Malaise vagal pendant la séance, appel du 15"}
LOST = {"kind": "connection_lost", "severity": "minor", "description": "Son coupé deux minutes"}


@pytest.fixture
def todays_visit(db_session, territory):
    """Today's assisted teleconsultation, the patient checked in by their IDEL."""
    visit = factories.visit(db_session, territory, TODAY_14H, state=AppointmentState.CHECKED_IN)
    db_session.commit()
    return visit


def test_the_idel_declares_an_eig_that_reaches_the_coordination_first(auth, db_session, territory, todays_visit):
    url = f"/visits/{todays_visit.id}/incidents"
    auth.login(territory.idel_user)
    assert f'href="{url}"' in text(auth.client.get("/visits"))
    page = text(auth.client.get(url))
    assert "Aucun incident déclaré sur cette séance." in page and "Déclarer un incident" in page
    assert auth.post(url, LOST).status_code == 302
    declared = auth.post(url, EIG)
    assert declared.status_code == 302 and declared.headers["Location"] == url
    page = text(auth.client.get(url))
    assert "Événement indésirable grave déclaré : la coordination de la CPTS est alertée." in page
    assert "Incidents déclarés (2)" in page and "Malaise vagal" in page
    alerts = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "serious_adverse_event")).all()
    assert [m.recipient for m in alerts] == ["coord@example.org"]

    auth.login(territory.coordinator)
    home = text(auth.client.get("/"))
    assert 'href="/incidents">Incidents</a>' in home
    listing = text(auth.client.get("/incidents"))
    assert listing.index("Événement indésirable grave (EIG)") < listing.index("Connexion perdue")
    assert territory.patient.display_name in listing and f'href="{url}"' in listing
    session_page = text(auth.client.get(url))
    assert "Malaise vagal" in session_page and "Déclarer l'incident" not in session_page
    assert auth.post(url, LOST).status_code == 404, "the coordination reads, those who were there declare"


def test_a_refused_declaration_is_shown_again_and_keeps_nothing(auth, db_session, territory, todays_visit):
    auth.login(territory.idel_user)
    refused = auth.post(f"/visits/{todays_visit.id}/incidents", {"kind": "equipment_failure", "description": ""})
    assert refused.status_code == 422
    body = text(refused)
    assert field_error(body, "description") == "Ce champ est obligatoire."
    refused = auth.post(f"/visits/{todays_visit.id}/incidents", EIG | {"severity": "minor"})
    assert refused.status_code == 422
    assert "par définition" in field_error(text(refused), "severity")
    assert db_session.scalar(select(func.count()).select_from(SessionIncident)) == 0
    assert (
        db_session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "serious_adverse_event")
        )
        == 0
    )


def test_after_the_session_the_performer_and_the_idel_find_it_in_their_pages(
    auth, db_session, territory, todays_visit, kine
):
    todays_visit.state = AppointmentState.DONE
    kine_done = factories.telesoin_session(
        db_session, territory, performer=kine.professional, state=AppointmentState.DONE, starts_at=TODAY_14H
    )
    db_session.commit()
    auth.login(territory.idel_user)
    assert f'href="/visits/{todays_visit.id}/incidents"' in text(auth.client.get("/agenda"))
    assert auth.post(f"/visits/{todays_visit.id}/incidents", LOST).status_code == 302
    auth.login(kine)
    assert f'href="/visits/{kine_done.id}/incidents"' in text(auth.client.get("/reports/session"))
    assert f'href="/visits/{kine_done.id}/rituals"' not in text(auth.client.get("/reports/session"))


def test_nobody_else_reaches_a_sessions_incidents(auth, db_session, territory, todays_visit):
    auth.login(territory.other_idel_user)
    assert auth.client.get(f"/visits/{todays_visit.id}/incidents").status_code == 404
    assert auth.post(f"/visits/{todays_visit.id}/incidents", EIG).status_code == 404
    assert auth.client.get("/incidents").status_code == 403
    auth.login(factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR))
    assert auth.client.get(f"/visits/{todays_visit.id}/incidents").status_code == 404
    assert "Aucun incident déclaré." in text(auth.client.get("/incidents"))
    assert db_session.scalar(select(func.count()).select_from(SessionIncident)) == 0
