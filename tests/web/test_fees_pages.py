import csv
import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from hub.models import AuditEvent, DeclaredActivity, Profession, Role, Tariff
from tests import factories
from tests.services.test_statements import bulk_ledger, count_queries, pdf_pages
from tests.web.test_patients_pages import field_error

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
EUROS = "\u00a0€"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def idel(db_session, cpts):
    return factories.clinician(db_session, cpts, Profession.NURSE, last_name="Delmas", first_name="Sophie")


@pytest.fixture
def other_idel(db_session, cpts):
    return factories.clinician(db_session, cpts, Profession.NURSE)


@pytest.fixture
def ledger(db_session, cpts, idel, other_idel):
    """Sophie Delmas's November: two accompaniments for a cardiologist and a télésoin act; 5 months declared."""
    cardiologist = factories.professional(db_session, cpts, Profession.SPECIALIST)
    patient = factories.patient(db_session, cpts, birth_name="LACOSTE", first_birth_given_name="HÉLÈNE")
    nurse = idel.professional
    factories.fee_entry(
        db_session, nurse, "TLL", dt.date(2026, 11, 23), patient=patient, prescriber_rpps=cardiologist.rpps
    )
    factories.fee_entry(
        db_session, nurse, "TLD", dt.date(2026, 11, 23), patient=patient, prescriber_rpps=cardiologist.rpps
    )
    factories.fee_entry(
        db_session, nurse, "TMI", dt.date(2026, 11, 25), patient=patient, remote=True, coefficient=Decimal(8)
    )
    factories.fee_entry(db_session, other_idel.professional, "TLS", dt.date(2026, 11, 24), patient=patient)
    for month in range(6, 11):
        db_session.add(DeclaredActivity(professional_id=nurse.id, year=2026, month=month, amount=Decimal("100")))
    db_session.commit()
    return cardiologist


def audit_rows(db_session, action, outcome=None):
    query = select(AuditEvent).where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    return list(db_session.scalars(query.order_by(AuditEvent.id)))


# --- a professional's own statement -----------------------------------------------------------------------


def test_an_idel_sees_her_statement_and_her_share_gauge(auth, db_session, idel, ledger):
    auth.login(idel)
    response = auth.client.get("/fees/me", query_string={"year": 2026, "month": 11})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<h1 class="h3">Mes actes et rémunérations</h1>' in body and "Relevé — novembre 2026" in body
    assert "TLL" in body and "TLD" in body and "TMI" in body and "H.L." in body and ledger.rpps in body
    assert "LACOSTE" not in body and "HÉLÈNE" not in body, "patients appear by their initials only"
    assert f"12,00{EUROS}" in body and f"52,20{EUROS}" in body, "total: 12 + 15 + 25.20"
    # 25.20 € of télésoin over 500 € declared in 5 months of 12, the 7 others estimated at 100 €: 2.1 %.
    assert re.search(r'<meter class="w-100" id="share-gauge"[^>]* low="15" high="20"[^>]*value="2.1"', body)
    assert "2,1\u00a0% (plafond 20\u00a0%)" in body and ">estimé</span>" in body
    assert 'action="/fees/me/activity"' in body and 'enctype="multipart/form-data"' in body
    assert f'href="/fees/professionals/{idel.professional_id}/statement.csv?year=2026&amp;month=11"' in body
    assert audit_rows(db_session, "fees.read")[-1].actor_user_id == idel.id


def test_the_gauge_warns_at_15_and_says_over_20(auth, db_session, cpts, idel):
    nurse = idel.professional
    for month in range(1, 12):
        db_session.add(DeclaredActivity(professional_id=nurse.id, year=2026, month=month, amount=Decimal("100")))
    db_session.add(DeclaredActivity(professional_id=nurse.id, year=2025, month=12, amount=Decimal("100")))
    for n in range(8):  # 201.60 € of 1,200 €: 16.8 %
        factories.fee_entry(db_session, nurse, "TMI", dt.date(2026, 6, 1 + n), remote=True, coefficient=Decimal(8))
    db_session.commit()
    auth.login(idel)
    body = auth.client.get("/fees/me").get_data(as_text=True)
    assert "16,8\u00a0%" in body and "alert-warning" in body and ">estimé</span>" not in body
    for n in range(2):  # 252 €: 21 %
        factories.fee_entry(db_session, nurse, "TMI", dt.date(2026, 7, 1 + n), remote=True, coefficient=Decimal(8))
    db_session.commit()
    body = auth.client.get("/fees/me").get_data(as_text=True)
    assert "21,0\u00a0%" in body and "Plafond de 20\u00a0% dépassé" in body


def test_a_gp_has_no_share_and_no_declaration(auth, gp):
    auth.login(gp)
    body = auth.client.get("/fees/me").get_data(as_text=True)
    assert "Mes actes et rémunérations" in body and "Aucun acte sur la période." in body
    assert "<meter" not in body and "/fees/me/activity" not in body


def test_the_default_period_is_the_current_month_and_a_year_has_no_month(auth, idel, ledger):
    auth.login(idel)
    assert "Relevé — novembre 2026" in auth.client.get("/fees/me").get_data(as_text=True)
    body = auth.client.get("/fees/me", query_string={"year": 2026}).get_data(as_text=True)
    assert "Relevé — année 2026" in body and '<option value="" selected>Toute l' in body
    body = auth.client.get("/fees/me", query_string={"year": "abc", "month": 13}).get_data(as_text=True)
    assert "Relevé — novembre 2026" in body, "a bad selector falls back to the current month"


def test_the_csv_and_pdf_downloads(auth, db_session, idel, ledger):
    auth.login(idel)
    url = f"/fees/professionals/{idel.professional_id}/statement"
    csv_response = auth.client.get(url + ".csv", query_string={"year": 2026, "month": 11})
    assert csv_response.mimetype == "text/csv"
    disposition = csv_response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="releve-{idel.professional.rpps}-2026-11.csv"'
    rows = list(csv.reader(io.StringIO(csv_response.get_data().decode("utf-8-sig")), delimiter=";"))
    assert [row[1] for row in rows[1:]] == ["TLL", "TLD", "TMI"] and rows[1][6] == ledger.rpps
    pdf_response = auth.client.get(url + ".pdf", query_string={"year": 2026})
    assert pdf_response.mimetype == "application/pdf" and pdf_pages(pdf_response.get_data()) == 1
    assert len(audit_rows(db_session, "fees.export")) == 2, "every export is traced"


# --- S2: nobody else's statement --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/statement.csv", "/statement.pdf"])
def test_another_professionals_statement_is_hidden_and_the_denial_audited(
    auth, db_session, idel, other_idel, ledger, suffix
):
    auth.login(idel)
    response = auth.client.get(f"/fees/professionals/{other_idel.professional_id}{suffix}")
    assert response.status_code == 404
    assert "TLS" not in response.get_data(as_text=True)
    action = "fees.export" if suffix else "fees.read"
    denied = audit_rows(db_session, action, outcome="denied")
    assert denied[-1].actor_user_id == idel.id and denied[-1].target_id == str(other_idel.professional_id)


def test_a_coordinator_of_another_cpts_sees_nothing(auth, db_session, idel, ledger):
    foreign = factories.cpts(db_session)
    stranger = factories.coordinator(db_session, foreign)
    db_session.commit()
    auth.login(stranger)
    assert auth.client.get(f"/fees/professionals/{idel.professional_id}").status_code == 404
    body = auth.client.get("/fees/cpts", query_string={"year": 2026}).get_data(as_text=True)
    assert "Aucun acte sur la période." in body and "TLL" not in body


def test_an_admin_sees_no_statement(auth, db_session, admin, idel, ledger):
    auth.login(admin)
    assert auth.client.get(f"/fees/professionals/{idel.professional_id}").status_code == 403
    assert auth.client.get("/fees/cpts").status_code == 403


# --- the coordinator --------------------------------------------------------------------------------------


def test_the_coordinator_overview(auth, db_session, cpts, coordinator, idel, ledger):
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER, last_name="Requérant")
    patient = factories.patient(db_session, cpts)
    for n in range(5):
        factories.fee_entry(db_session, gp, "RQD", dt.date(2026, 11, 2 + n), patient=patient)
    db_session.commit()
    auth.login(coordinator)
    assert auth.client.get("/fees/me").headers["Location"].startswith("/fees/cpts")
    response = auth.client.get("/fees/cpts", query_string={"year": 2026, "month": 11})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Rémunérations de la CPTS — novembre 2026" in body
    assert "Infirmier·e" in body and "Médecin généraliste" in body and "TLS" in body
    assert f"40,00{EUROS}" in body, "the GP's four paid RQD"
    caps = body.split('id="caps"')[1].split("</section>")[0]
    assert "NOM" in caps.upper() and "REQUÉRANT" in caps.upper() and ">RQD<" in caps
    assert "Aucun·e IDEL ou kiné n'atteint le seuil d'alerte de 15\u00a0%." in body
    professionals = body.split('id="by-professional"')[1].split("</section>")[0]
    assert (
        f'href="/fees/professionals/{idel.professional_id}?year=2026&amp;month=11">Sophie DELMAS</a>' in professionals
    )
    statement = auth.client.get(f"/fees/professionals/{idel.professional_id}", query_string={"year": 2026})
    assert statement.status_code == 200 and "Actes et rémunérations — Sophie DELMAS" in statement.get_data(as_text=True)
    assert "/fees/me/activity" not in statement.get_data(as_text=True), "declared by the professional only"


def test_the_overview_lists_the_idels_over_the_share(auth, db_session, cpts, coordinator, idel):
    nurse = idel.professional
    for month in range(1, 13):
        year = 2025 if month == 12 else 2026
        db_session.add(DeclaredActivity(professional_id=nurse.id, year=year, month=month, amount=Decimal("100")))
    for n in range(10):
        factories.fee_entry(db_session, nurse, "TMI", dt.date(2026, 6, 1 + n), remote=True, coefficient=Decimal(8))
    db_session.commit()
    auth.login(coordinator)
    body = auth.client.get("/fees/cpts").get_data(as_text=True)
    shares = body.split('id="shares"')[1]
    assert "Sophie DELMAS" in shares and "21,0\u00a0%" in shares and "Plafond de 20\u00a0% dépassé" in shares


# --- declared activity ------------------------------------------------------------------------------------


def declared(db_session, professional_id):
    rows = db_session.scalars(
        select(DeclaredActivity)
        .where(DeclaredActivity.professional_id == professional_id)
        .order_by(DeclaredActivity.year, DeclaredActivity.month)
    )
    return [(row.year, row.month, row.amount, row.source) for row in rows]


def test_an_idel_declares_a_month(auth, db_session, idel):
    auth.login(idel)
    response = auth.post("/fees/me/activity", data={"period": "2026-10", "amount": "4 250,50"})
    assert response.status_code == 302 and response.headers["Location"] == "/fees/me"
    assert declared(db_session, idel.professional_id) == [(2026, 10, Decimal("4250.50"), "declared")]
    body = auth.client.get("/fees/me").get_data(as_text=True)
    assert "Activité de octobre 2026 enregistrée." in body
    months = body.split("<caption>Mois déclarés")[1].split("</table>")[0]
    assert f'<td>Octobre 2026</td>\n          <td class="text-end">4\u202f250,50{EUROS}</td>' in months
    assert months.count("non déclaré") == 11
    assert audit_rows(db_session, "activity.declare")[-1].actor_user_id == idel.id


def test_the_short_form_proposes_the_last_month_to_declare_and_shows_last_years_figures(auth, db_session, idel):
    """One month and its amount; beside them what was declared last year, in total and for the same month."""
    nurse = idel.professional
    for month, amount in ((10, "3900"), (11, "4100"), (12, "3000")):
        db_session.add(DeclaredActivity(professional_id=nurse.id, year=2025, month=month, amount=Decimal(amount)))
    db_session.add(DeclaredActivity(professional_id=nurse.id, year=2026, month=11, amount=Decimal("4200")))
    db_session.commit()
    auth.login(idel)
    body = auth.client.get("/fees/me").get_data(as_text=True)
    section = body.split('id="activity-title"')[1].split("</section>")[0]
    assert "L'an dernier (2025) :\n      <strong>11\u202f000,00" in section and "sur 3 mois" in section
    # November 2026 is declared: the form proposes October, the last complete month still to declare, and
    # shows October 2025's figure beside the amount.
    assert '<option value="2026-10" selected>Octobre 2026</option>' in section
    assert f"Même mois l&#39;an dernier : 3\u202f900,00{EUROS}" in section
    assert 'name="year"' not in section and 'name="month"' not in section, "one field for the month"
    november = section.split("<td>Novembre 2026</td>")[1].split("</tr>")[0]
    assert f"4\u202f200,00{EUROS}" in november and f"4\u202f100,00{EUROS}" in november
    assert "<details>" in section and 'action="/fees/me/activity/import"' in section, "the CSV import stays"


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"period": "2026-10", "amount": "-3"}, "amount", "positif"),
        ({"period": "2026-10", "amount": "12,345"}, "amount", "centime"),
        ({"period": "2026-10", "amount": "beaucoup"}, "amount", "Montant invalide"),
        ({"period": "2026-13", "amount": "100"}, "period", "Choisissez un mois de la liste."),
        ({"period": "octobre", "amount": "100"}, "period", "Choisissez un mois de la liste."),
        ({"period": "2026-12", "amount": "100"}, "period", "pas encore commencé"),
        ({"period": "2026-10"}, "amount", "obligatoire"),
    ],
)
def test_a_wrong_declaration_is_explained_and_nothing_saved(auth, db_session, idel, ledger, form, field, message):
    auth.login(idel)
    response = auth.post("/fees/me/activity", data=form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert (2026, 12) not in [(y, m) for y, m, _a, _s in declared(db_session, idel.professional_id)]
    assert len(declared(db_session, idel.professional_id)) == 5
    assert audit_rows(db_session, "fees.read")[-1].actor_user_id == idel.id, "the page shown again is a traced read"


def test_s3_the_declaration_refuses_fields_it_does_not_know(auth, db_session, idel, other_idel):
    """A professional declares for themselves only: another's id (or an amount of a fee) is refused."""
    auth.login(idel)
    for extra in ({"professional_id": str(other_idel.professional_id)}, {"fee_amount": "999"}):
        response = auth.post("/fees/me/activity", data={"period": "2026-10", "amount": "10"} | extra)
        assert response.status_code == 422
        assert "Champ inconnu ou non modifiable." in response.get_data(as_text=True)
    assert declared(db_session, other_idel.professional_id) == declared(db_session, idel.professional_id) == []


def test_only_idels_and_kines_declare(auth, db_session, gp, coordinator):
    auth.login(gp)
    assert auth.post("/fees/me/activity", data={"period": "2026-10", "amount": "1"}).status_code == 403
    assert audit_rows(db_session, "activity.declare", outcome="denied")[-1].actor_user_id == gp.id
    auth.login(coordinator)
    assert auth.post("/fees/me/activity", data={"period": "2026-10", "amount": "1"}).status_code == 403


def upload(auth, content: bytes, name="activite.csv"):
    return auth.post(
        "/fees/me/activity/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_an_idel_imports_her_monthly_totals(auth, db_session, idel):
    auth.login(idel)
    response = upload(auth, "année;mois;montant\n2026;8;3 100,00\n2026;9;3200,5\n".encode("utf-8-sig"))
    assert response.status_code == 302
    assert declared(db_session, idel.professional_id) == [
        (2026, 8, Decimal("3100.00"), "imported"),
        (2026, 9, Decimal("3200.50"), "imported"),
    ]
    assert "2 mois d&#39;activité importés." in auth.client.get("/fees/me").get_data(as_text=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"2026;8;100\n2026;14;100\n", "ligne 2 : mois invalide"),
        (b"", "Choisissez un fichier CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "pas un fichier texte CSV"),
        (b"2026;8;1\n" * 8_000, "Fichier trop volumineux"),  # 72 KB (the test client spools 500 KB to a file)
    ],
)
def test_a_wrong_import_is_refused_whole(auth, db_session, idel, content, message):
    auth.login(idel)
    response = upload(auth, content)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), "file")
    assert declared(db_session, idel.professional_id) == []


# --- the admin's tariff editor ----------------------------------------------------------------------------


def test_the_admin_sees_the_tariff_history(auth, admin):
    auth.login(admin)
    body = auth.client.get("/fees/tariffs").get_data(as_text=True)
    te2 = body.split('id="code-TE2"')[1].split("</section>")[0]
    assert f"23,00{EUROS}" in te2 and f"20,00{EUROS}" in te2 and "31 décembre 2025" in te2 and "en cours" in te2
    assert te2.index("23,00") < te2.index("20,00"), "newest first"


def test_the_admin_adds_a_version_and_history_stays(auth, db_session, admin):
    auth.login(admin)
    form = {"code": "TLD", "label": "Accompagnement à domicile", "amount": "16,50", "effective_from": "2027-01-01"}
    response = auth.post("/fees/tariffs", data=form)
    assert response.status_code == 302
    rows = db_session.execute(
        select(Tariff.amount, Tariff.effective_until).where(Tariff.code == "TLD").order_by(Tariff.effective_from)
    ).all()
    assert rows == [(Decimal("15.00"), dt.date(2026, 12, 31)), (Decimal("16.50"), None)]
    body = auth.client.get("/fees/tariffs").get_data(as_text=True)
    assert "Nouvelle version de TLD enregistrée" in body
    response = auth.post("/fees/tariffs", data=form | {"effective_from": "2026-12-31"})
    assert response.status_code == 422
    assert "doit commencer après" in field_error(response.get_data(as_text=True), "effective_from")
    response = auth.post("/fees/tariffs", data=form | {"effective_from": "31/12/2027", "amount": "x"})
    body = response.get_data(as_text=True)
    assert "Date invalide" in field_error(body, "effective_from") and "Montant invalide" in field_error(body, "amount")


def test_professionals_and_coordinators_do_not_edit_tariffs(auth, idel, coordinator):
    for user in (idel, coordinator):
        auth.login(user)
        assert auth.client.get("/fees/tariffs").status_code == 403
        form = {"code": "TLD", "label": "x", "amount": "1", "effective_from": "2027-01-01"}
        assert auth.post("/fees/tariffs", data=form).status_code == 403


def test_fee_forms_refuse_a_missing_csrf_token(auth, idel, admin):
    auth.login(idel)
    response = auth.client.post("/fees/me/activity", data={"period": "2026-10", "amount": "1"})
    assert response.status_code == 400
    auth.login(admin)
    assert auth.client.post("/fees/tariffs", data={"code": "TLD"}).status_code == 400


# --- navigation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("idel", ["/fees/me"], ["/fees/cpts", "/fees/tariffs"]),
        ("coordinator", ["/fees/cpts"], ["/fees/me", "/fees/tariffs"]),
        ("admin", ["/fees/tariffs"], ["/fees/me", "/fees/cpts"]),
    ],
)
def test_navigation_links(auth, request, who, shown, hidden):
    auth.login(request.getfixturevalue(who))
    nav = auth.client.get("/").get_data(as_text=True).split("</nav>")[0]
    assert all(text in nav for text in shown) and not any(text in nav for text in hidden)


# --- P6: the pages' query counts do not grow with the data ------------------------------------------------


def page_queries(auth, engine, user, coordinator) -> dict[str, int]:
    counts = {}
    for who, url in (
        (user, "/fees/me?year=2026"),
        (user, f"/fees/professionals/{user.professional_id}/statement.csv?year=2026"),
        (coordinator, "/fees/cpts?year=2026"),
    ):
        auth.login(who)
        with count_queries(engine) as seen:
            assert auth.client.get(url).status_code == 200
        counts[url.split("/")[-1].split("?")[0]] = len(seen)
    return counts


def test_page_query_counts_do_not_grow_with_the_data(auth, db_session, engine, cpts, coordinator):
    """P6: the same number of queries with 3 professionals of 3 entries each and with 33 (30 of 30 entries)."""
    small = factories.user(
        db_session,
        cpts,
        Role.PROFESSIONAL,
        professional_row=bulk_ledger(db_session, cpts, professionals=3, entries_each=3),
    )
    db_session.commit()
    before = page_queries(auth, engine, small, coordinator)
    large = factories.user(
        db_session,
        cpts,
        Role.PROFESSIONAL,
        professional_row=bulk_ledger(db_session, cpts, professionals=30, entries_each=30),
    )
    db_session.commit()
    assert page_queries(auth, engine, large, coordinator) == before
    assert max(before.values()) <= 15, before


def test_the_share_thresholds_are_written_from_the_fee_rules_only():
    """The pages read the alert and cap shares from workflows.fees: no template writes them as numbers."""
    templates = Path(__file__).resolve().parents[2] / "hub" / "web" / "templates"
    written = [
        f"{path.name}: {found.group(0)}"
        for path in templates.rglob("*.html")
        for found in re.finditer(r"\b(15|20)\s?%|(low|high)=\"\d", re.sub(r"{#.*?#}", "", path.read_text(), flags=re.S))
    ]
    assert written == []
