"""« Indicateurs »: the coordinator's charts (inline SVG, no script, no inline style, under the strict CSP) with a
table under each, the period and program filters, and the year's export as CSV and PDF, nothing nominative."""

import html
import re

import pytest
from defusedxml import ElementTree as SafeET
from sqlalchemy import select

from hub.models import AuditEvent, Role
from tests import factories
from tests.pdfs import pdf_text
from tests.workflows.test_indicators import play_december


@pytest.fixture
def december(db_session, territory):
    month = play_december(db_session, territory)
    db_session.commit()
    return month


def test_the_coordinator_sees_the_charts_and_their_tables(auth, db_session, territory, december):
    auth.login(territory.coordinator)
    assert 'href="/indicateurs">Indicateurs</a>' in auth.client.get("/").text
    page = auth.client.get("/indicateurs?year=2026&month=12")
    assert page.status_code == 200
    body = html.unescape(page.text)
    assert "Indicateurs de la CPTS — décembre 2026" in body
    assert body.count('<svg class="indicator-chart"') == 5
    main = body.split("<main", 1)[1]
    assert "<script" not in main and "<style" not in main and " style=" not in main, "the CSP allows neither"
    assert '<th scope="row">Toute la CPTS</th><td>9</td><td>4</td>' in body
    assert "Taux d'incident technique (%)</th><td>40,0</td>" in body
    assert "TMK</th><td>2</td><td>450,00</td>" in body
    assert territory.patient.display_name not in body and territory.cardiologist.last_name not in body
    assert 'href="/indicateurs/export.csv?year=2026"' in body
    assert db_session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == "indicators.read"


def test_the_program_filter_and_a_bad_filter(auth, db_session, territory, december):
    auth.login(territory.coordinator)
    kine = html.unescape(auth.client.get(f"/indicateurs?year=2026&month=12&program_id={december.kine_program.id}").text)
    assert "programme « Télésoin kiné »" in kine and '<th scope="row">Toute la CPTS</th><td>2</td><td>1</td>' in kine
    other = factories.program(db_session, factories.cpts(db_session))
    db_session.commit()
    refused = html.unescape(auth.client.get(f"/indicateurs?year=2026&program_id={other.id}").text)
    assert "Programme inconnu dans cette CPTS." in refused and "Indicateurs de la CPTS — année 2026" in refused
    assert "Mois entre 1 et 12." in html.unescape(auth.client.get("/indicateurs?month=13").text)


def test_the_year_exports_as_csv_and_pdf(auth, db_session, territory, december):
    auth.login(territory.coordinator)
    csv = auth.client.get("/indicateurs/export.csv?year=2026&month=12")
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert 'filename="indicateurs-cpts-2026.csv"' in csv.headers["Content-Disposition"]
    text = csv.data.decode("utf-8-sig")
    assert text.startswith("Indicateurs de la CPTS — année 2026\r\n"), "the year's, whatever the month shown"
    assert "décembre;9;4;1;1;1;1" in text and "TMK;2;450,00" in text and "Taux de réponse (%);66,7" in text
    assert territory.patient.birth_name not in text and territory.idel.last_name not in text
    pdf = auth.client.get("/indicateurs/export.pdf?year=2026")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Cache-Control"] == "no-store"
    report = pdf_text(pdf.data)
    assert "Indicateurs de la CPTS — année 2026" in report and "Rémunérations par code" in report
    assert "Mode dégradé" in report and "décembre" in report, "the charts' legends and labels are drawn as text"
    assert territory.patient.birth_name not in report and territory.cardiologist.last_name not in report
    actions = db_session.scalars(select(AuditEvent.action).where(AuditEvent.action == "indicators.export")).all()
    assert len(actions) == 2


def test_only_the_coordination_reads_the_indicators(auth, db_session, territory):
    auth.login(territory.idel_user)
    assert auth.client.get("/indicateurs").status_code == 403
    assert auth.client.get("/indicateurs/export.csv").status_code == 403
    assert "/indicateurs" not in auth.client.get("/").text
    admin = factories.user(db_session, territory.cpts, Role.ADMIN)
    auth.login(admin)
    assert auth.client.get("/indicateurs/export.pdf").status_code == 403


def test_a_program_name_with_characters_xml_forbids_still_draws_its_charts(auth, db_session, territory, december):
    """A name stored before the input policy refused these characters: the SVG of the chart naming it must parse."""
    december.kine_program.name = "Télésoin\x0b kiné\uffff"
    db_session.commit()
    auth.login(territory.coordinator)
    page = auth.client.get("/indicateurs?year=2026&month=12")
    assert page.status_code == 200
    charts = re.findall(r'<svg class="indicator-chart".*?</svg>', page.text, flags=re.DOTALL)
    assert len(charts) == 5
    for chart in charts:
        SafeET.fromstring(chart)  # well-formed, for a strict parser
    assert any("Télésoin kiné" in chart for chart in charts)
    assert auth.client.get("/indicateurs/export.pdf?year=2026").status_code == 200
