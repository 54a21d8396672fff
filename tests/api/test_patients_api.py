import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AuditEvent, Consent, IdentityStatus, Patient, Role, Sex
from hub.services import identity
from tests import factories

NEW_PATIENT = {
    "birth_name": "Vidal",
    "first_birth_given_name": "Georges",
    "birth_date": "1941-06-02",
    "sex": "M",
    "birth_place_insee": "24037",
}


def patient_count(session):
    return session.scalar(select(func.count()).select_from(Patient))


def last_audit(session):
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_gp_reads_own_patient_and_the_read_is_audited(api_as, gp, db_session, cpts):
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    response = api_as(gp).get(f"/api/v1/patients/{patient.id}")
    assert response.status_code == 200
    assert response.get_json()["birth_name"] == patient.birth_name
    event = last_audit(db_session)
    assert (event.action, event.target_id, event.actor_user_id, event.outcome) == (
        "patient.read",
        str(patient.id),
        gp.id,
        "success",
    )
    assert event.request_id == response.headers["X-Request-Id"]


def test_no_idor_a_professional_without_care_relation_gets_404_and_a_denial_line(api_as, nurse, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    response = api_as(nurse).get(f"/api/v1/patients/{patient.id}")
    assert_problem(response, 404)
    event = last_audit(db_session)
    assert (event.action, event.outcome, event.target_id) == ("patient.read", "denied", str(patient.id))


def test_missing_and_forbidden_patients_look_the_same(api_as, nurse, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    hidden = api_as(nurse).get(f"/api/v1/patients/{patient.id}").get_json()
    missing = api_as(nurse).get("/api/v1/patients/999999").get_json()
    assert {k: v for k, v in hidden.items() if k not in ("instance", "request_id")} == {
        k: v for k, v in missing.items() if k not in ("instance", "request_id")
    }


def test_care_team_membership_opens_the_record(api_as, nurse, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    factories.in_care_team(db_session, patient, nurse.professional)
    assert api_as(nurse).get(f"/api/v1/patients/{patient.id}").status_code == 200


def test_other_cpts_coordinator_gets_404(api_as, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    other = factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR)
    assert_problem(api_as(other).get(f"/api/v1/patients/{patient.id}"), 404)


def test_admin_sees_no_patient_data(api_as, admin, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    assert_problem(api_as(admin).get(f"/api/v1/patients/{patient.id}"), 403)
    assert_problem(api_as(admin).get("/api/v1/patients"), 403)
    assert last_audit(db_session).outcome == "denied"


def test_list_shows_only_patients_in_care(api_as, gp, db_session, cpts):
    mine = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    factories.patient(db_session, cpts)
    body = api_as(gp).get("/api/v1/patients").get_json()
    assert [item["id"] for item in body["items"]] == [mine.id]
    assert body["total"] == 1


def test_coordinator_lists_the_whole_cpts_with_pagination(api_as, coordinator, db_session, cpts):
    for _ in range(5):
        factories.patient(db_session, cpts)
    factories.patient(db_session, factories.cpts(db_session))
    body = api_as(coordinator).get("/api/v1/patients?per_page=2&page=2").get_json()
    assert (body["total"], body["page"], body["per_page"], len(body["items"])) == (5, 2, 2, 2)


@pytest.mark.parametrize("query", ["page=0", "per_page=1000", "page=x", "birth_date=1941-02-30"])
def test_bad_list_parameters_are_problems(api_as, coordinator, query):
    assert_problem(api_as(coordinator).get(f"/api/v1/patients?{query}"), 400 if "birth" not in query else 422)


def test_create_patient(api_as, gp, db_session):
    response = api_as(gp).post("/api/v1/patients", json=NEW_PATIENT | {"attending_gp_id": gp.professional_id})
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/patients/{body['id']}"
    assert (body["birth_name"], body["identity_status"], body["ins"]) == ("VIDAL", "PROV", None)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ins_matricule": "141062403700199"}, "ins_matricule", "clé de contrôle"),
        ({"birth_place_insee": "2403"}, "birth_place_insee", "code INSEE"),
        ({"birth_date": "1941-02-30"}, "birth_date", "Date invalide"),
        ({"birth_date": None}, "birth_date", "vide"),
        ({"sex": "X"}, "sex", "Valeur inconnue"),
        ({"phone": "12"}, "phone", "numéro français"),
        ({"identity_status": "QUAL"}, "identity_status", "Champ inconnu"),
        ({"cpts_id": 1}, "cpts_id", "Champ inconnu"),
    ],
)
def test_bad_input_is_a_422_in_french_and_nothing_is_saved(api_as, gp, db_session, change, field, message):
    before = patient_count(db_session)
    body = assert_problem(api_as(gp).post("/api/v1/patients", json=NEW_PATIENT | change), 422)
    assert message in body["errors"][field]
    assert patient_count(db_session) == before


# I5: identity traits as the RNIV allows them, INSEE codes that exist; each refusal names its field.
REFUSED_TRAITS = [
    pytest.param(
        {"birth_name": "VI\u200bDAL"}, "birth_name", "Nom de naissance : caractère invisible", id="zero-width"
    ),
    pytest.param({"birth_name": "\u202eLADIV"}, "birth_name", "(U+202E) non autorisé", id="rtl-override"),
    pytest.param({"birth_name": "VID\u0410L"}, "birth_name", "« \u0410 » (U+0410)", id="cyrillic"),
    pytest.param(
        {"first_birth_given_name": "Georges \U0001f600"}, "first_birth_given_name", "Premier prénom", id="emoji"
    ),
    pytest.param(
        {"used_last_name": "<script>x</script>"}, "used_last_name", "Nom utilisé : caractère « < »", id="markup"
    ),
    pytest.param({"used_first_name": "Jo3"}, "used_first_name", "Prénom utilisé", id="digit"),
    pytest.param(
        {"birth_given_names": "GEORGES\u00adLOUIS"}, "birth_given_names", "Prénoms de naissance", id="soft-hyphen"
    ),
    pytest.param({"birth_place_insee": "99999"}, "birth_place_insee", "n'existe pas", id="insee-99999"),
    pytest.param({"commune_insee": "00000"}, "commune_insee", "n'existe pas", id="insee-00000"),
]


@pytest.mark.parametrize(("change", "field", "message"), REFUSED_TRAITS)
def test_identity_traits_outside_the_rniv_are_refused(api_as, gp, db_session, change, field, message):
    before = patient_count(db_session)
    body = assert_problem(api_as(gp).post("/api/v1/patients", json=NEW_PATIENT | change), 422)
    assert message in body["errors"][field]
    assert patient_count(db_session) == before


def test_a_look_alike_spelling_is_caught_not_created(api_as, coordinator, db_session, cpts):
    """I5: with another patient's birth date, a look-alike name is refused, and another spelling of the same
    name (accents, case, spaces, decomposed accents) is a possible duplicate."""
    existing = existing_vidal(db_session, cpts, first_birth_given_name="ANDRE")
    client, before = api_as(coordinator), patient_count(db_session)
    for name in ("AN\u200bDRE", "ANDR\u0415"):
        body = assert_problem(client.post("/api/v1/patients", json=NEW_PATIENT | {"first_birth_given_name": name}), 422)
        assert "Premier prénom de naissance : caractère" in body["errors"]["first_birth_given_name"]
    for name in ("André", "Andre\u0301", "  andre "):
        changes = {"birth_name": "Vidal-Martin", "first_birth_given_name": name}
        body = assert_problem(client.post("/api/v1/patients", json=NEW_PATIENT | changes), 409)
        assert body["candidate_ids"] == [existing.id]
    assert patient_count(db_session) == before


def test_a_patch_with_a_refused_trait_changes_nothing(api_as, gp, db_session, cpts):
    mine = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    name = mine.birth_name
    body = assert_problem(api_as(gp).patch(f"/api/v1/patients/{mine.id}", json={"birth_name": "X\u200dY"}), 422)
    assert "Nom de naissance" in body["errors"]["birth_name"]
    db_session.expire_all()
    assert db_session.get(Patient, mine.id).birth_name == name


@pytest.mark.parametrize("missing", ["birth_name", "first_birth_given_name", "birth_date", "sex", "birth_place_insee"])
def test_missing_strict_trait_is_refused(api_as, gp, db_session, missing):
    before = patient_count(db_session)
    payload = {k: v for k, v in NEW_PATIENT.items() if k != missing}
    body = assert_problem(api_as(gp).post("/api/v1/patients", json=payload), 422)
    assert body["errors"][missing] == "Ce champ est obligatoire."
    assert patient_count(db_session) == before


def test_non_json_body_is_415(api_as, gp):
    assert_problem(api_as(gp).client.post("/api/v1/patients", data="x=1", headers=api_as(gp).headers), 415)


def test_possible_duplicate_is_a_409_with_candidates_then_accepted_when_checked(api_as, gp, db_session):
    client = api_as(gp)
    first = client.post("/api/v1/patients", json=NEW_PATIENT).get_json()
    body = assert_problem(client.post("/api/v1/patients", json=NEW_PATIENT), 409)
    assert body["candidate_ids"] == [first["id"]]
    assert client.post("/api/v1/patients?duplicates_checked=true", json=NEW_PATIENT).status_code == 201


def existing_vidal(db_session, cpts, **overrides):
    traits = {"birth_name": "VIDAL", "first_birth_given_name": "GEORGES", "birth_date": dt.date(1941, 6, 2)}
    return factories.patient(db_session, cpts, **(traits | {"sex": Sex.MALE} | overrides))


def duplicate_check_lines(db_session, actor):
    return list(
        db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "patient.duplicate_check", AuditEvent.actor_user_id == actor.id)
            .order_by(AuditEvent.id)
        )
    )


def test_duplicate_outside_ones_care_is_only_said_to_exist_and_audited(api_as, nurse, db_session, cpts):
    """I5: an IDEL without a care relation learns that a possible duplicate exists, not who; the check names
    the candidate in the audit log, without health content; setting it aside is not theirs to do."""
    existing = existing_vidal(db_session, cpts)
    before = patient_count(db_session)
    for url in ("/api/v1/patients", "/api/v1/patients?duplicates_checked=true"):
        response = api_as(nurse).post(url, json=NEW_PATIENT)
        body = assert_problem(response, 409)
        text = response.get_data(as_text=True)
        assert body["candidate_ids"] == []
        assert set(body) == {"type", "title", "status", "detail", "instance", "request_id", "candidate_ids"}
        assert "VIDAL" not in text.upper() and "1941" not in text and "coordination" in body["detail"]
    assert patient_count(db_session) == before
    lines = duplicate_check_lines(db_session, nurse)
    assert [(line.target_type, line.target_id) for line in lines] == [("patients", str(existing.id))] * 2
    assert all(line.details == '{"shown": false}' for line in lines)


def test_duplicate_in_ones_care_is_shown_and_audited(api_as, nurse, db_session, cpts):
    existing = existing_vidal(db_session, cpts)
    factories.in_care_team(db_session, existing, nurse.professional)
    body = assert_problem(api_as(nurse).post("/api/v1/patients", json=NEW_PATIENT), 409)
    assert body["candidate_ids"] == [existing.id]
    assert [line.details for line in duplicate_check_lines(db_session, nurse)] == ['{"shown": true}']
    assert api_as(nurse).post("/api/v1/patients?duplicates_checked=true", json=NEW_PATIENT).status_code == 201


def test_the_coordination_sees_every_candidate(api_as, coordinator, db_session, cpts):
    existing = existing_vidal(db_session, cpts)
    body = assert_problem(api_as(coordinator).post("/api/v1/patients", json=NEW_PATIENT), 409)
    assert body["candidate_ids"] == [existing.id]


def test_duplicate_checks_are_rate_limited_per_user(api_as, nurse, gp, db_session, cpts, monkeypatch):
    """I5: past a few possible duplicates in an hour, a user's creations are refused (429) before any check, so
    that the answer tells nothing; other users are not affected; the refusal is audited."""
    monkeypatch.setattr(identity, "DUPLICATES_TOLD_PER_HOUR", 3)
    existing_vidal(db_session, cpts)
    client = api_as(nurse)
    for _ in range(3):
        assert_problem(client.post("/api/v1/patients", json=NEW_PATIENT), 409)
    before = patient_count(db_session)
    body = assert_problem(client.post("/api/v1/patients", json=NEW_PATIENT), 429)
    assert "Trop de recherches de doublons" in body["detail"]
    other = NEW_PATIENT | {"birth_name": "Martin", "first_birth_given_name": "Paul", "birth_date": "1960-01-01"}
    assert_problem(client.post("/api/v1/patients", json=other), 429)  # no duplicate, still refused
    assert patient_count(db_session) == before
    assert [line.outcome for line in duplicate_check_lines(db_session, nurse)][-2:] == ["denied", "denied"]
    assert api_as(gp).post("/api/v1/patients", json=other).status_code == 201
    document = client.get("/api/v1/openapi.json").get_json()
    assert "429" in document["paths"]["/patients"]["post"]["responses"]


def test_ins_is_exposed_only_for_a_qualified_identity(api_as, gp, db_session):
    client = api_as(gp)
    nir = factories.valid_nir(sex=Sex.MALE, birth_date=dt.date(1941, 6, 2), birth_place="24037")
    created = client.post("/api/v1/patients", json=NEW_PATIENT | {"ins_matricule": nir}).get_json()
    url = f"/api/v1/patients/{created['id']}"
    assert created["ins"] is None
    client.post(f"{url}/identity-checks", json={"kind": "document", "document_type": "cni"})
    assert client.get(url).get_json()["identity_status"] == IdentityStatus.VALIDATED.value
    client.post(f"{url}/identity-checks", json={"kind": "ins_retrieval"})
    body = client.get(url).get_json()
    assert body["identity_status"] == "QUAL"
    assert body["ins"] == {"matricule": nir, "oid": "1.2.250.1.213.1.4.8"}


def test_patch_patient_and_ids_swapped_in_body_are_refused(api_as, gp, db_session, cpts):
    mine = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    theirs = factories.patient(db_session, cpts)
    client = api_as(gp)
    assert client.patch(f"/api/v1/patients/{mine.id}", json={"phone": "0612345678"}).status_code == 200
    assert_problem(client.patch(f"/api/v1/patients/{theirs.id}", json={"phone": "0612345678"}), 404)
    assert_problem(client.patch(f"/api/v1/patients/{mine.id}", json={"id": theirs.id}), 422)
    other_cpts_gp = factories.professional(
        db_session, factories.cpts(db_session), factories.Profession.GENERAL_PRACTITIONER
    )
    body = assert_problem(client.patch(f"/api/v1/patients/{mine.id}", json={"attending_gp_id": other_cpts_gp.id}), 422)
    assert "médecin généraliste de la CPTS" in body["errors"]["attending_gp_id"]


def test_consents_through_the_api(api_as, gp, db_session, cpts):
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    client = api_as(gp)
    url = f"/api/v1/patients/{patient.id}/consents"
    consent = client.post(
        url, json={"kind": "telehealth", "method": "oral", "collected_at": "2026-11-20T10:00:00+01:00"}
    ).get_json()
    assert consent["is_valid"] is True
    assert_problem(
        client.post(url, json={"kind": "telehealth", "method": "oral", "collected_at": "2026-11-20T10:00:00"}), 422
    )
    withdrawn = client.post(f"{url}/{consent['id']}/withdraw", json={"reason": "refus"}).get_json()
    assert withdrawn["is_valid"] is False
    assert_problem(client.post(f"{url}/{consent['id']}/withdraw", json={"reason": "encore"}), 409)


def test_a_consent_is_collected_only_by_an_active_professional_of_the_patient_s_cpts(api_as, gp, db_session, cpts):
    """Named by another one (a coordinator's entry of a colleague's consent), the collector is read: another CPTS's
    or a deactivated professional is refused, and nothing is written."""
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    coordinator = factories.user(db_session, cpts, Role.COORDINATOR)
    colleague = factories.professional(db_session, cpts)
    refused = {
        "another CPTS's": factories.professional(db_session, factories.cpts(db_session)).id,
        "deactivated": factories.professional(db_session, cpts, is_active=False).id,
        "unknown": colleague.id + 1000,
    }
    url = f"/api/v1/patients/{patient.id}/consents"
    body = {"kind": "telehealth", "method": "oral", "collected_on": "2026-11-20"}
    for actor in (coordinator, gp):
        client = api_as(actor)
        for collector in refused.values():
            response = client.post(url, json=body | {"collected_by_professional_id": collector})
            assert "collected_by_professional_id" in assert_problem(response, 422)["errors"]
    assert db_session.scalar(select(func.count()).select_from(Consent).where(Consent.patient_id == patient.id)) == 0
    accepted = api_as(coordinator).post(url, json=body | {"collected_by_professional_id": colleague.id})
    assert accepted.status_code == 201 and accepted.get_json()["collected_by_professional_id"] == colleague.id


def test_unauthenticated_api_is_401_problem(client):
    assert_problem(client.get("/api/v1/patients"), 401)
    assert_problem(client.get("/api/v1/patients", headers={"Authorization": "Bearer hubpat_nope"}), 401)


def test_unknown_api_route_is_a_problem(client):
    assert_problem(client.get("/api/v1/nothing-here"), 404)


@pytest.mark.parametrize("path", ["/api/v1/patients", "/api/v1/patients/{id}"], ids=["view", "light read"])
def test_the_api_knows_its_caller_by_the_bearer_token_only(api_as, auth, client, gp, nurse, db_session, cpts, path):
    """A browser's logged-in session neither authenticates an API call nor stands in for a wrong token (401), and
    with a token the token's user is the caller, whoever is logged in in the browser (hub.app._LoginManager)."""
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    db_session.commit()
    url = path.format(id=patient.id)
    auth.login(gp)
    assert client.get("/").status_code == 200  # the browser's session is live
    assert_problem(client.get(url), 401)
    assert_problem(client.get(url, headers={"Authorization": "Bearer hubpat_nope"}), 401)
    as_nurse = api_as(nurse)
    response = as_nurse.get(url)
    if path.endswith("{id}"):
        assert_problem(response, 404)  # the nurse has no care relation: the token's user, not the browser's GP
        assert (last_audit(db_session).actor_user_id, last_audit(db_session).outcome) == (nurse.id, "denied")
    else:
        assert response.status_code == 200 and response.get_json()["total"] == 0
