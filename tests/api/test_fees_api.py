import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import func, select

from hub.models import AuditEvent, DeclaredActivity, FeeEntry, Profession, Role, Tariff
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.queries import count_queries

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def kine(db_session, cpts):
    professional = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST)
    return factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=professional)


@pytest.fixture
def entries(db_session, cpts, nurse, gp):
    """The nurse's accompaniments in October and November, the GP's teleconsultations."""
    patient = factories.patient(db_session, cpts, birth_name="MARTIN", first_birth_given_name="JEANNE")
    for day in (dt.date(2026, 10, 5), dt.date(2026, 11, 2), dt.date(2026, 11, 9)):
        factories.fee_entry(
            db_session, nurse.professional, "TLL", day, patient=patient, prescriber_rpps=gp.professional.rpps
        )
    factories.fee_entry(db_session, nurse.professional, "TLD", dt.date(2026, 11, 16), patient=patient)
    factories.fee_entry(db_session, gp.professional, "TCG", dt.date(2026, 11, 2), patient=patient)
    db_session.commit()
    return patient


def codes(response) -> list[str]:
    return [item["code"] for item in response.get_json()["items"]]


def test_a_professional_lists_their_own_fees(api_as, nurse, gp, entries):
    response = api_as(nurse).get("/api/v1/fees")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 4 and codes(response) == ["TLL", "TLL", "TLL", "TLD"]
    item = body["items"][1]
    assert item == {
        "id": item["id"],
        "professional_id": nurse.professional_id,
        "act_on": "2026-11-02",
        "code": "TLL",
        "label": item["label"],
        "coefficient": "1.00",
        "amount": "12.00",
        "status": "accrued",
        "status_label": "Acquis",
        "patient_initials": "J.M.",
        "prescriber_rpps": gp.professional.rpps,
        "prescriber_name": gp.professional.full_name,
        "note": None,
    }
    assert "MARTIN" not in response.get_data(as_text=True)


def test_filters_and_pages(api_as, nurse, entries):
    client = api_as(nurse)
    november = client.get("/api/v1/fees?from=2026-11-01&to=2026-11-30")
    assert codes(november) == ["TLL", "TLL", "TLD"]
    assert codes(client.get("/api/v1/fees?code=TLD")) == ["TLD"]
    assert codes(client.get(f"/api/v1/fees?professional_id={nurse.professional_id}&code=TLL&to=2026-10-31")) == ["TLL"]
    page = client.get("/api/v1/fees?per_page=3&page=2").get_json()
    assert (page["total"], page["page"], [item["code"] for item in page["items"]]) == (4, 2, ["TLD"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-13-01", "from"),
        ("from=2026-11-30&to=2026-11-01", "to"),
        ("code=tll", "code"),
        ("professional_id=abc", "professional_id"),
        ("amount=12", "amount"),
    ],
)
def test_bad_filters_are_explained(api_as, nurse, query, field):
    body = assert_problem(api_as(nurse).get(f"/api/v1/fees?{query}"), 422)
    assert field in body["errors"]


def test_s2_another_professionals_fees_are_hidden_and_the_denial_audited(api_as, db_session, nurse, gp, entries):
    body = assert_problem(api_as(nurse).get(f"/api/v1/fees?professional_id={gp.professional_id}"), 404)
    assert "TCG" not in str(body)
    denied = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "fees.list", AuditEvent.outcome == "denied")
    ).all()
    assert denied[-1].actor_user_id == nurse.id and denied[-1].target_id == str(gp.professional_id)
    assert "TCG" not in codes(api_as(nurse).get("/api/v1/fees?per_page=200"))


def test_the_coordination_lists_its_cpts_and_nothing_else(api_as, db_session, coordinator, nurse, gp, entries):
    foreign_cpts = factories.cpts(db_session)
    foreign = factories.professional(db_session, foreign_cpts, Profession.NURSE)
    factories.fee_entry(db_session, foreign, "TLS", dt.date(2026, 11, 2))
    db_session.commit()
    client = api_as(coordinator)
    assert sorted(codes(client.get("/api/v1/fees?per_page=200"))) == ["TCG", "TLD", "TLL", "TLL", "TLL"]
    assert codes(client.get(f"/api/v1/fees?professional_id={gp.professional_id}")) == ["TCG"]
    assert_problem(client.get(f"/api/v1/fees?professional_id={foreign.id}"), 404)


def test_the_admin_lists_no_fees(api_as, admin, entries):
    assert_problem(api_as(admin).get("/api/v1/fees"), 403)


def test_fee_listing_query_count_does_not_grow(api_as, db_session, engine, cpts, coordinator, nurse):
    client = api_as(coordinator)
    client.get("/api/v1/fees")  # the token's first use is recorded once
    counts = []
    for size in (3, 30):
        for n in range(size):
            factories.fee_entry(db_session, nurse.professional, "TLL", dt.date(2026, 1, 1) + dt.timedelta(days=n))
        db_session.commit()
        with count_queries(engine) as seen:
            assert client.get("/api/v1/fees?per_page=10").status_code == 200
        counts.append(len(seen))
    assert counts[0] == counts[1]


# --- the 20 % share ---------------------------------------------------------------------------------------


def test_remote_share_over_the_rolling_year_and_a_calendar_year(api_as, db_session, kine):
    professional = kine.professional
    for month in range(1, 12):
        db_session.add(DeclaredActivity(professional_id=professional.id, year=2026, month=month, amount=Decimal(100)))
    for n in range(10):  # 10 × 2.15 × 8 = 172 €
        factories.fee_entry(
            db_session, professional, "TMK", dt.date(2026, 3, 1 + n), remote=True, coefficient=Decimal(8)
        )
    db_session.commit()
    client = api_as(kine)

    rolling = client.get(f"/api/v1/professionals/{professional.id}/remote-share").get_json()
    assert rolling == {
        "professional_id": professional.id,
        "period_start": "2025-12-01",
        "period_end": "2026-11-30",
        "share": "0.1433",  # 172 / (11 × 100 + 100 estimated for December 2025)
        "remote_amount": "172.00",
        "total_amount": "1200.00",
        "estimated": True,
        "level": "ok",
        "warning_at": "0.15",
        "limit": "0.20",
    }
    year = client.get(f"/api/v1/professionals/{professional.id}/remote-share?year=2026").get_json()
    assert (year["period_start"], year["period_end"], year["share"], year["estimated"]) == (
        "2026-01-01",
        "2026-11-30",
        "0.1564",
        False,
    )
    assert year["level"] == "alerte"
    assert client.get(f"/api/v1/professionals/{professional.id}/remote-share?year=2025").get_json()["level"] == (
        "inconnu"
    )
    assert_problem(client.get(f"/api/v1/professionals/{professional.id}/remote-share?year=2027"), 422)
    assert_problem(client.get(f"/api/v1/professionals/{professional.id}/remote-share?year=deux"), 422)


def test_remote_share_is_for_idels_and_kines_and_their_coordination(api_as, kine, gp, nurse, coordinator):
    assert_problem(api_as(gp).get(f"/api/v1/professionals/{gp.professional_id}/remote-share"), 404)
    assert_problem(api_as(nurse).get(f"/api/v1/professionals/{kine.professional_id}/remote-share"), 404)
    assert api_as(coordinator).get(f"/api/v1/professionals/{kine.professional_id}/remote-share").status_code == 200


# --- declared activity ------------------------------------------------------------------------------------


def test_an_idel_declares_a_month_and_reads_it_beside_last_year(api_as, db_session, nurse):
    professional = nurse.professional
    for month, amount in ((10, "3900"), (11, "4100")):
        row = DeclaredActivity(professional_id=professional.id, year=2025, month=month, amount=Decimal(amount))
        db_session.add(row)
    db_session.commit()
    client = api_as(nurse)
    url = f"/api/v1/professionals/{professional.id}/activity"
    response = client.post(url, json={"year": 2026, "month": 10, "amount": "4 250,50"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "professional_id": professional.id,
        "year": 2026,
        "month": 10,
        "amount": "4250.50",
        "source": "declared",
    }
    assert client.post(url, json={"year": 2026, "month": 10, "amount": 4300}).get_json()["amount"] == "4300.00"
    body = client.get(url).get_json()
    assert (body["period_start"], body["period_end"]) == ("2025-12-01", "2026-11-30")
    assert (body["last_year"], body["last_year_total"], body["last_year_months_declared"]) == (2025, "8000.00", 2)
    assert [(m["year"], m["month"]) for m in body["months"][:2]] == [(2026, 11), (2026, 10)]
    assert body["months"][1] == {
        "year": 2026,
        "month": 10,
        "amount": "4300.00",
        "source": "declared",
        "amount_a_year_before": "3900.00",
    }
    assert body["months"][0]["amount"] is None and body["months"][0]["amount_a_year_before"] == "4100.00"
    assert len(body["months"]) == 12
    rows = db_session.scalars(select(DeclaredActivity).where(DeclaredActivity.year == 2026)).all()
    assert [(r.month, r.amount, r.recorded_by_user_id) for r in rows] == [(10, Decimal("4300.00"), nurse.id)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"year": 2026, "month": 12, "amount": "100"}, "month"),  # not begun yet
        ({"year": 2026, "month": 13, "amount": "100"}, "month"),
        ({"year": 2026, "month": 10, "amount": "-1"}, "amount"),
        ({"year": 2026, "month": 10}, "amount"),
        ({"year": 2026, "month": 10, "amount": "1", "source": "imported"}, "source"),
    ],
)
def test_a_wrong_declaration_is_refused_and_nothing_saved(api_as, db_session, nurse, body, field):
    response = api_as(nurse).post(f"/api/v1/professionals/{nurse.professional_id}/activity", json=body)
    assert field in assert_problem(response, 422)["errors"]
    assert db_session.scalar(select(func.count(DeclaredActivity.id))) == 0


def test_one_declares_only_for_oneself_and_only_idels_and_kines(api_as, db_session, nurse, kine, gp, coordinator):
    body = {"year": 2026, "month": 10, "amount": "100"}
    assert_problem(api_as(nurse).post(f"/api/v1/professionals/{kine.professional_id}/activity", json=body), 404)
    assert_problem(api_as(coordinator).post(f"/api/v1/professionals/{kine.professional_id}/activity", json=body), 403)
    assert_problem(api_as(gp).post(f"/api/v1/professionals/{gp.professional_id}/activity", json=body), 403)
    assert db_session.scalar(select(func.count(DeclaredActivity.id))) == 0
    denied = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "activity.declare", AuditEvent.outcome == "denied")
    ).all()
    assert [event.actor_user_id for event in denied][:1] == [nurse.id]
    # Reading: one's own, and the coordination's; not another professional's, not a GP's (no share).
    assert api_as(coordinator).get(f"/api/v1/professionals/{kine.professional_id}/activity").status_code == 200
    assert_problem(api_as(nurse).get(f"/api/v1/professionals/{kine.professional_id}/activity"), 404)
    assert_problem(api_as(gp).get(f"/api/v1/professionals/{gp.professional_id}/activity"), 404)


# --- tariffs ----------------------------------------------------------------------------------------------


def test_everyone_reads_the_tariffs(api_as, nurse):
    body = api_as(nurse).get("/api/v1/tariffs?code=TE2").get_json()
    assert [(t["amount"], t["effective_from"], t["effective_until"]) for t in body["items"]] == [
        ("20.00", "2020-01-01", "2025-12-31"),
        ("23.00", "2026-01-01", None),
    ]
    assert body["items"][0]["yearly_cap_per_patient"] == 4


def test_the_admin_adds_a_tariff_version(api_as, db_session, admin):
    client = api_as(admin)
    response = client.post(
        "/api/v1/tariffs",
        json={
            "code": "TE2",
            "label": "Téléexpertise, médecin requis",
            "amount": "25,00",
            "effective_from": "2027-01-01",
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"] == "/api/v1/tariffs?code=TE2"
    assert (response.get_json()["amount"], response.get_json()["yearly_cap_per_patient"]) == ("25.00", 4)
    body = client.get("/api/v1/tariffs?code=TE2").get_json()
    assert [t["effective_until"] for t in body["items"]] == ["2025-12-31", "2026-12-31", None]
    overlap = assert_problem(
        client.post(
            "/api/v1/tariffs",
            json={"code": "TE2", "label": "Téléexpertise", "amount": 26, "effective_from": "2026-06-01"},
        ),
        422,
    )
    assert "doit commencer après" in overlap["errors"]["effective_from"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "TE2", "label": "x", "amount": "25", "effective_from": "2027-01-01", "id": 1}, "id"),
        ({"code": "TE2", "label": "x", "amount": "25", "effective_from": "2027-01-01", "unit": "block"}, "unit"),
        ({"code": "TE2", "label": "x", "amount": "-1", "effective_from": "2027-01-01"}, "amount"),
        ({"code": "TE2", "label": "x", "amount": True, "effective_from": "2027-01-01"}, "amount"),
        ({"code": "TE2", "label": "x", "amount": "25", "effective_from": "2027-02-30"}, "effective_from"),
        ({"code": "te 2", "label": "x", "amount": "25", "effective_from": "2027-01-01"}, "code"),
        ({"label": "x", "amount": "25", "effective_from": "2027-01-01"}, "code"),
    ],
)
def test_a_bad_tariff_is_refused_and_nothing_saved(api_as, db_session, admin, body, field):
    before = db_session.scalar(select(func.count(Tariff.id)))
    problem = assert_problem(api_as(admin).post("/api/v1/tariffs", json=body), 422)
    assert field in problem["errors"]
    assert db_session.scalar(select(func.count(Tariff.id))) == before


def test_s3_professionals_and_coordinators_set_no_amount(api_as, db_session, nurse, coordinator, entries):
    """Nobody but the admin sets a price, and no route sets a fee's amount: fees are accrued by the workflows."""
    body = {"code": "TLL", "label": "x", "amount": "99", "effective_from": "2027-01-01"}
    for user in (nurse, coordinator):
        assert_problem(api_as(user).post("/api/v1/tariffs", json=body), 403)
    entry_id = db_session.scalar(select(FeeEntry.id).limit(1))
    for method in ("post", "patch", "put"):
        response = getattr(api_as(nurse).client, method)(
            f"/api/v1/fees/{entry_id}", json={"amount": "99"}, headers=api_as(nurse).headers
        )
        assert response.status_code in (404, 405)
    assert api_as(nurse).client.post("/api/v1/fees", json={"amount": "99"}).status_code in (401, 405)


def test_the_openapi_document_describes_the_fee_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/fees", "/professionals/{professional_id}/remote-share", "/tariffs"} <= set(paths)
    assert set(paths["/tariffs"]) == {"get", "post"}
    assert {p["name"] for p in paths["/fees"]["get"]["parameters"]} >= {"professional_id", "from", "to", "code"}
