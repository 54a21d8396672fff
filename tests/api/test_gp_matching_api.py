"""Issue 16, item 7, through the API: patients without a médecin traitant, kept on a list with their consent,
triaged by fragility, proposed to the GPs who declare capacity; the outcome recorded and audited."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AuditEvent, GpSearch, GpSearchState, OutboxMessage, Patient, Profession, Professional
from tests import factories
from tests.api.test_patients_api import assert_problem

VERGT, CHALAGNAC, BERGERAC = "24571", "24094", "24037"
TODAY = factories.now().astimezone(factories.PARIS).date()  # the territory's day, as the hub reckons it


def gp(db_session, cpts, commune, capacity, last_name):
    return factories.clinician(
        db_session,
        cpts,
        Profession.GENERAL_PRACTITIONER,
        commune_insee=commune,
        new_patient_capacity=capacity,
        last_name=last_name,
        email=f"{last_name.lower()}@example.org",
    )


def orphan(db_session, cpts, *, age=50, commune=VERGT):
    born = TODAY.replace(year=TODAY.year - age) - dt.timedelta(days=1)
    return factories.patient(db_session, cpts, birth_date=born, commune_insee=commune)


def enter(api, patient, **criteria):
    body = {"patient_id": patient.id, "consent_on": TODAY.isoformat(), "consent_method": "oral"} | criteria
    return api.post("/api/v1/patients-without-gp", json=body)


def audit_mark(db_session) -> int:
    """The last audit line before the test: the log keeps other tests' committed lines."""
    return db_session.scalar(select(func.max(AuditEvent.id))) or 0


def actions(db_session, action, after):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.id > after)).all()


def test_the_list_is_triaged_by_fragility_with_its_reasons(api_as, db_session, cpts, coordinator):
    mark = audit_mark(db_session)
    api = api_as(coordinator)
    young = orphan(db_session, cpts, age=40)
    frail = orphan(db_session, cpts, age=87)
    middle = orphan(db_session, cpts, age=70)
    db_session.commit()
    assert enter(api, young).status_code == 201
    made = enter(
        api,
        frail,
        has_ald=True,
        chronic_conditions=["insuffisance_cardiaque", "diabete"],
        hospitalised_on=(TODAY - dt.timedelta(days=20)).isoformat(),
        is_isolated=True,
    )
    assert made.status_code == 201, made.json
    assert made.headers["Location"].endswith(f"/api/v1/patients-without-gp/{made.json['entry']['id']}")
    assert enter(api, middle, other_fragility="Aidant hospitalisé").status_code == 201

    listed = api.get("/api/v1/patients-without-gp")

    assert listed.status_code == 200
    assert "Finalité" in listed.json["purpose"]
    items = listed.json["items"]
    assert [i["patient_id"] for i in items] == [frail.id, middle.id, young.id]
    # 87 years: 3, ALD: 2, two conditions: 2, hospitalised 20 days ago: 3, isolated: 2.
    assert (items[0]["fragility_score"], items[0]["priority"]) == (12, "haute")
    assert items[0]["reasons"][:3] == ["87 ans", "ALD", "Diabète"] and "isolement" in items[0]["reasons"]
    assert (items[1]["fragility_score"], items[1]["priority"], items[1]["reasons"]) == (
        2,
        "basse",
        ["70 ans", "Aidant hospitalisé"],
    )
    assert listed.json["counts"] == {"haute": 1, "moyenne": 0, "basse": 2}
    assert (
        len(actions(db_session, "gp_search.enter", mark)) == 3 and len(actions(db_session, "gp_search.list", mark)) == 1
    )


def test_bad_entries_are_refused_and_nothing_is_saved(api_as, db_session, cpts, coordinator, gp):
    api = api_as(coordinator)
    patient = orphan(db_session, cpts)
    followed = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    db_session.commit()
    assert_problem(api.post("/api/v1/patients-without-gp", json={"patient_id": patient.id}), 422)
    assert_problem(enter(api, patient, chronic_conditions=["rhume"]), 422)
    future = (TODAY + dt.timedelta(days=5)).isoformat()
    assert "consent_on" in assert_problem(enter(api, patient, consent_on=future), 422)["errors"]
    assert_problem(enter(api, followed), 422)
    assert_problem(enter(api, factories.patient(db_session, factories.cpts(db_session))), 404)
    assert enter(api, patient).status_code == 201
    assert_problem(enter(api, patient), 409)
    db_session.expire_all()
    assert [s.patient_id for s in db_session.scalars(select(GpSearch))] == [patient.id]


def test_propose_accept_sets_the_medecin_traitant_and_takes_a_place(api_as, db_session, cpts, coordinator):
    near = gp(db_session, cpts, CHALAGNAC, 2, "Proche")
    far = gp(db_session, cpts, BERGERAC, 1, "Loin")
    gp(db_session, cpts, VERGT, 0, "Complet")  # takes nobody: not listed
    patient = orphan(db_session, cpts)
    db_session.commit()
    api = api_as(coordinator)
    search_id = enter(api, patient).json["entry"]["id"]

    detail = api.get(f"/api/v1/patients-without-gp/{search_id}").json
    assert [m["gp_id"] for m in detail["matching_gps"]] == [near.professional_id, far.professional_id]
    assert detail["matching_gps"][0]["capacity"] == 2 and 5 < detail["matching_gps"][0]["distance_km"] < 7

    proposed = api.post(f"/api/v1/patients-without-gp/{search_id}/propose", json={"gp_id": near.professional_id})
    assert proposed.status_code == 201, proposed.json
    notice = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "gp_patient_proposed")).one()
    assert notice.recipient == near.professional.email and patient.birth_name not in notice.payload
    desk = api_as(near).get("/api/v1/me/desk").json["gp"]
    assert (desk["proposal_ids"], desk["new_patient_capacity"]) == ([proposed.json["id"]], 2)
    coordination = api.get("/api/v1/me/desk").json["coordinator"]
    assert (coordination["patients_without_gp_waiting"], coordination["patients_without_gp_to_propose"]) == (1, 0)
    again = api.post(f"/api/v1/patients-without-gp/{search_id}/propose", json={"gp_id": near.professional_id})
    assert_problem(again, 409)
    assert_problem(api_as(far).post(f"/api/v1/patients-without-gp/proposals/{proposed.json['id']}/accept"), 404)
    accepted = api_as(near).post(f"/api/v1/patients-without-gp/proposals/{proposed.json['id']}/accept")
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["state"] == "acceptee"

    db_session.expire_all()
    assert db_session.get(Patient, patient.id).attending_gp_id == near.professional_id
    assert db_session.get(Professional, near.professional_id).new_patient_capacity == 1
    search = db_session.get(GpSearch, search_id)
    assert (search.state, search.gp_id) == (GpSearchState.MATCHED, near.professional_id)
    assert api.get("/api/v1/patients-without-gp").json["items"] == []
    assert_problem(api_as(near).post(f"/api/v1/patients-without-gp/proposals/{proposed.json['id']}/accept"), 409)


def test_a_refusal_keeps_the_patient_waiting_with_the_reason(api_as, db_session, cpts, coordinator):
    doctor = gp(db_session, cpts, CHALAGNAC, 1, "Refus")
    patient = orphan(db_session, cpts)
    db_session.commit()
    api = api_as(coordinator)
    search_id = enter(api, patient).json["entry"]["id"]
    proposal_id = api.post(
        f"/api/v1/patients-without-gp/{search_id}/propose", json={"gp_id": doctor.professional_id}
    ).json["id"]
    url = f"/api/v1/patients-without-gp/proposals/{proposal_id}/refuse"
    assert "reason" in assert_problem(api_as(doctor).post(url, json={}), 422)["errors"]
    refused = api_as(doctor).post(url, json={"reason": "Patientèle trop éloignée"})
    assert refused.status_code == 200 and refused.json["reason"] == "Patientèle trop éloignée"
    detail = api.get(f"/api/v1/patients-without-gp/{search_id}").json
    assert detail["entry"]["state"] == "en_attente" and detail["matching_gps"] == [], "not asked twice"
    assert detail["entry"]["proposals"][0]["state"] == "refusee"
    db_session.expire_all()
    assert db_session.get(Professional, doctor.professional_id).new_patient_capacity == 1


@pytest.mark.parametrize(("outcome", "state"), [("retire", "retire"), ("trouve_ailleurs", "trouve_ailleurs")])
def test_withdrawal_or_found_elsewhere_removes_the_patient_and_is_traced(
    api_as, db_session, cpts, coordinator, outcome, state
):
    mark = audit_mark(db_session)
    doctor = gp(db_session, cpts, CHALAGNAC, 1, "Attente")
    patient = orphan(db_session, cpts)
    db_session.commit()
    api = api_as(coordinator)
    search_id = enter(api, patient).json["entry"]["id"]
    proposal_id = api.post(
        f"/api/v1/patients-without-gp/{search_id}/propose", json={"gp_id": doctor.professional_id}
    ).json["id"]
    url = f"/api/v1/patients-without-gp/{search_id}/withdraw"
    assert_problem(api.post(url, json={"outcome": outcome}), 422)
    done = api.post(url, json={"outcome": outcome, "reason": "Appel du patient"})
    assert done.status_code == 200, done.json
    assert done.json["entry"]["state"] == state and done.json["entry"]["proposals"][0]["state"] == "retiree"
    assert api.get("/api/v1/patients-without-gp").json["items"] == []
    assert len(actions(db_session, f"gp_search.{state}", mark)) == 1
    assert_problem(api_as(doctor).post(f"/api/v1/patients-without-gp/proposals/{proposal_id}/accept"), 409)
    assert enter(api, patient).status_code == 201, "back on the list with a new consent"


def test_the_gp_declares_capacity_and_others_cannot(api_as, db_session, cpts, coordinator, nurse):
    mark = audit_mark(db_session)
    doctor = gp(db_session, cpts, VERGT, 0, "Capacite")
    db_session.commit()
    api = api_as(doctor)
    assert api.get("/api/v1/me/gp-capacity").json == {"capacity": 0}
    assert api.put("/api/v1/me/gp-capacity", json={"capacity": 3}).json == {"capacity": 3}
    assert_problem(api.put("/api/v1/me/gp-capacity", json={"capacity": -1}), 422)
    assert_problem(api.put("/api/v1/me/gp-capacity", json={"capacity": 51}), 422)
    assert_problem(api_as(nurse).put("/api/v1/me/gp-capacity", json={"capacity": 3}), 403)
    assert_problem(api_as(coordinator).get("/api/v1/me/gp-capacity"), 403)
    assert_problem(api_as(doctor).get("/api/v1/patients-without-gp"), 403)
    db_session.expire_all()
    assert db_session.get(Professional, doctor.professional_id).new_patient_capacity == 3
    assert len(actions(db_session, "gp.capacity", mark)) == 1


def test_another_cpts_meets_an_audited_404(api_as, db_session, cpts, coordinator):
    patient = orphan(db_session, cpts)
    db_session.commit()
    mark = audit_mark(db_session)
    search_id = enter(api_as(coordinator), patient).json["entry"]["id"]
    stranger = factories.coordinator(db_session, factories.cpts(db_session))
    db_session.commit()
    assert_problem(api_as(stranger).get(f"/api/v1/patients-without-gp/{search_id}"), 404)
    assert api_as(stranger).get("/api/v1/patients-without-gp").json["items"] == []
    denied = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.target_id == str(search_id), AuditEvent.id > mark
        )
    ).all()
    assert [event.action for event in denied] == ["gp_search.read"]


def test_a_proposal_needs_a_gp_of_the_cpts_with_a_place_and_a_waiting_patient(api_as, db_session, cpts, coordinator):
    full = gp(db_session, cpts, VERGT, 0, "Complet")
    elsewhere = factories.clinician(
        db_session, factories.cpts(db_session), Profession.GENERAL_PRACTITIONER, new_patient_capacity=3
    )
    nurse_there = factories.professional(db_session, cpts, Profession.NURSE)
    open_one = gp(db_session, cpts, VERGT, 1, "Ouvert")
    patient = orphan(db_session, cpts)
    db_session.commit()
    api = api_as(coordinator)
    search_id = enter(api, patient).json["entry"]["id"]
    url = f"/api/v1/patients-without-gp/{search_id}/propose"
    assert "n'accepte pas" in assert_problem(api.post(url, json={"gp_id": full.professional_id}), 422)["detail"]
    for other in (elsewhere.professional_id, nurse_there.id, 2**31 - 1):
        assert "gp_id" in assert_problem(api.post(url, json={"gp_id": other}), 422)["errors"]
    api.post(f"/api/v1/patients-without-gp/{search_id}/withdraw", json={"reason": "Déménage"})
    assert_problem(api.post(url, json={"gp_id": open_one.professional_id}), 409)
    db_session.expire_all()
    assert db_session.get(GpSearch, search_id).proposals == []
