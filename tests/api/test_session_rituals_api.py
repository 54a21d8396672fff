"""The six rituals of a kiné's télésoin session through the API: recorded with the session by the kiné who
performs it (PUT, whole each time), required to complete it (422 naming what is missing), summarised in the
télésoin report's PDF and CDA body; nobody else records them."""

import base64
import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from hub.documents import store
from hub.models import AppointmentState, AuditEvent, FeeEntry, Profession, Report
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.pdfs import pdf_text

pytestmark = pytest.mark.usefixtures("clock")

RITUALS = factories.KINE_RITUALS
UNDER_WAY = factories.MONDAY_14H + dt.timedelta(minutes=10)  # the sessions' time: they can be done


def rituals_url(appointment) -> str:
    return f"/api/v1/appointments/{appointment.id}/rituals"


def test_the_kine_records_the_rituals_and_then_completes_the_session(api_as, db_session, kine, kine_session, clock):
    clock.move_to(UNDER_WAY)
    api = api_as(kine)
    answer = api.put(rituals_url(kine_session), json=RITUALS)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["is_complete"] is True and body["missing"] == [] and body["recorded_at"]
    assert body["proms"] == RITUALS["proms"] and body["plan"] == RITUALS["plan"]
    line = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "appointment.rituals"))
    assert (line.actor_user_id, line.target_id) == (kine.id, str(kine_session.id))
    assert "EVA" not in line.details, "the audit holds no health data"

    done = api.post(
        f"/api/v1/appointments/{kine_session.id}/complete",
    )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["state"] == "done"
    assert api.get(rituals_url(kine_session)).get_json()["stop_criteria"] == RITUALS["stop_criteria"]


def test_completion_without_the_rituals_is_refused_naming_what_is_missing(
    api_as, db_session, kine, kine_session, clock
):
    clock.move_to(UNDER_WAY)
    api = api_as(kine)
    complete = f"/api/v1/appointments/{kine_session.id}/complete"
    problem = assert_problem(
        api.post(
            complete,
        ),
        422,
    )
    assert "rituels de la séance de télésoin ne sont pas tous enregistrés" in problem["detail"]
    assert "le brief d'ouverture" in problem["detail"] and "le plan avant J+7" in problem["detail"]

    partial = {name: value for name, value in RITUALS.items() if name not in ("plan", "telesoin_consent")}
    recorded = api.put(rituals_url(kine_session), json=partial)
    assert recorded.status_code == 200, recorded.get_json()
    assert recorded.get_json()["missing"] == ["le consentement spécifique au télésoin", "le plan avant J+7"]
    problem = assert_problem(
        api.post(
            complete,
        ),
        422,
    )
    assert problem["detail"] == (
        "Les rituels de la séance de télésoin ne sont pas tous enregistrés : il manque le consentement spécifique "
        "au télésoin ; le plan avant J+7."
    )
    db_session.refresh(kine_session)
    assert kine_session.state is AppointmentState.CHECKED_IN
    assert db_session.scalar(select(func.count()).select_from(FeeEntry)) == 0, "no TMK without the rituals"


def test_the_rituals_only_belong_to_a_kines_telesoin_session(api_as, db_session, territory, clock):
    nurse = factories.clinician(db_session, territory.cpts, Profession.NURSE, does_telesoin=True)
    session = factories.telesoin_session(db_session, territory, performer=nurse.professional)
    db_session.commit()
    clock.move_to(UNDER_WAY)
    problem = assert_problem(api_as(nurse).put(rituals_url(session), json=RITUALS), 422)
    assert "télésoin d'un·e masseur-kinésithérapeute" in problem["detail"]
    read = assert_problem(api_as(nurse).get(rituals_url(session)), 422)  # not « six rituals missing »
    assert "télésoin d'un·e masseur-kinésithérapeute" in read["detail"]
    done = api_as(nurse).post(
        f"/api/v1/appointments/{session.id}/complete",
    )
    assert done.status_code == 200, "an IDEL's télésoin session has no rituals to record"


def test_the_rituals_are_recorded_during_the_session(api_as, db_session, territory, kine):
    confirmed = factories.telesoin_session(
        db_session, territory, performer=kine.professional, state=AppointmentState.CONFIRMED
    )
    db_session.commit()
    problem = assert_problem(api_as(kine).put(rituals_url(confirmed), json=RITUALS), 422)
    assert problem["detail"] == "Les rituels s'enregistrent pendant la séance, une fois le patient accueilli."
    db_session.refresh(confirmed)
    assert confirmed.rituals is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"proms": [{"name": "EVA", "value": "6"}] * 3}, "proms"),
        ({"proms": [{"name": "EVA"}]}, "proms.0.value"),
        ({"opening_brief": "peut-être"}, "opening_brief"),
        ({"state": "done"}, "state"),
        ({"plan": "x" * 1001}, "plan"),
    ],
)
def test_a_malformed_record_is_refused_and_keeps_nothing(api_as, db_session, kine, kine_session, body, field):
    problem = assert_problem(api_as(kine).put(rituals_url(kine_session), json=body), 422)
    assert field in problem["errors"]
    db_session.refresh(kine_session)
    assert kine_session.rituals is None


def test_the_coordinator_reads_the_rituals_but_only_the_kine_records_them(api_as, db_session, territory, kine_session):
    coordinator = api_as(territory.coordinator)
    assert coordinator.get(rituals_url(kine_session)).get_json()["missing"][0] == (
        "le brief d'ouverture (agenda, durée, objectifs)"
    )
    assert_problem(coordinator.put(rituals_url(kine_session), json=RITUALS), 404)
    other_kine = factories.clinician(db_session, territory.cpts, Profession.PHYSIOTHERAPIST)
    db_session.commit()
    assert_problem(api_as(other_kine).put(rituals_url(kine_session), json=RITUALS), 404)
    assert_problem(api_as(other_kine).get(rituals_url(kine_session)), 404)
    db_session.refresh(kine_session)
    assert kine_session.rituals is None


def test_the_telesoin_report_carries_the_rituals_and_proms_in_its_pdf_and_cda(
    api_as, db_session, kine, kine_session, uploads, clock, app
):
    clock.move_to(UNDER_WAY)
    api = api_as(kine)
    assert api.put(rituals_url(kine_session), json=RITUALS).status_code == 200
    assert (
        api.post(
            f"/api/v1/appointments/{kine_session.id}/complete",
        ).status_code
        == 200
    )
    report = api.post("/api/v1/reports", json={"appointment_id": kine_session.id}).get_json()
    written = {"acts": "Rééducation de l'équilibre (TMK 8)", "conclusion": "Progrès à l'appui unipodal."}
    assert api.patch(f"/api/v1/reports/{report['id']}", json=written).status_code == 200
    signed = api.post(f"/api/v1/reports/{report['id']}/sign").get_json()
    assert signed["loinc"] == "11506-3", signed
    factories.render_signed_reports(app)  # the worker's pass: the rituals as they were at the signature

    text = " ".join(pdf_text(api.get(f"/api/v1/reports/{report['id']}/pdf").data).split())
    assert "Rituels de la séance de télésoin" in text
    assert (
        "Brief d'ouverture (agenda, durée et objectifs de la séance ; consentement spécifique au télésoin) : fait"
        in (text)
    )
    assert "Clôture (récapitulatif, plan avant J+7, message asynchrone de renfort) : fait" in text
    assert "Plan jusqu'à la prochaine séance (avant J+7) : Exercices d'équilibre chaque matin" in text
    assert "Mesure initiale (PROMs)" in text
    assert "EVA douleur : 6/10" in text and "Timed Up and Go : 14 s" in text
    assert "Critères d'arrêt de la séance : Douleur au-delà de 7/10 ou vertiges" in text

    stored = store.read_stored(uploads, db_session.get(Report, report["id"]).cda_sha256)
    cda = ET.fromstring(stored)  # noqa: S314 (the hub's own output)
    body = cda.find("{urn:hl7-org:v3}component/{urn:hl7-org:v3}nonXMLBody/{urn:hl7-org:v3}text")
    assert "EVA douleur : 6/10" in " ".join(pdf_text(base64.b64decode(body.text)).split())
