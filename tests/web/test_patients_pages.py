import datetime as dt
import re

import pytest
import time_machine
from sqlalchemy import event, func, select

from hub.db import utcnow
from hub.identifiers import INS_OID_NIR
from hub.models import (
    AuditEvent,
    CareTeamMember,
    Consent,
    ConsentKind,
    ConsentMethod,
    IdentityCheck,
    IdentityCheckKind,
    IdentityDocumentType,
    IdentityStatus,
    Patient,
    Profession,
    Role,
    Sex,
)
from hub.services import identity
from tests import factories

BIRTH_DATE = dt.date(1980, 5, 17)


@pytest.fixture
def stranger(db_session, cpts):
    """A nurse of the same CPTS who takes no part in the patient's care."""
    user = factories.user(db_session, cpts, Role.PROFESSIONAL)
    db_session.commit()
    return user


@pytest.fixture
def patient(db_session, cpts, gp):
    row = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    db_session.commit()
    return row


def patient_form(**overrides) -> dict:
    values = {
        "birth_name": "Durand",
        "first_birth_given_name": "Léa",
        "birth_date": BIRTH_DATE.isoformat(),
        "sex": "F",
        "birth_place_insee": "24322",
    }
    return values | overrides


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


def field_error(body: str, name: str) -> str:
    """The message shown next to a field (the element the field's aria-describedby points to)."""
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return found.group(1) if found else ""


def audit_events(db_session, action: str, *, outcome: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    return list(db_session.scalars(query.order_by(AuditEvent.id)))


# --- list and search ---------------------------------------------------------------------------------------


def test_gp_lists_only_their_patients(auth, db_session, cpts, gp, patient):
    other = factories.patient(db_session, cpts, birth_name="AUTRE")
    db_session.commit()
    auth.login(gp)
    response = auth.client.get("/patients")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert patient.display_name in body and other.display_name not in body
    assert "badge-status status-PROV" in body and "Identité provisoire" in body
    assert patient.birth_date.strftime("%Y") in body and "Féminin" in body
    assert audit_events(db_session, "patient.search")[-1].actor_user_id == gp.id


def test_coordinator_searches_the_whole_cpts(auth, db_session, cpts, coordinator, patient):
    other = factories.patient(db_session, cpts, birth_name="MARTINEAU", birth_date=dt.date(1972, 3, 1))
    elsewhere = factories.patient(db_session, factories.cpts(db_session), birth_name="MARTINEAU")
    db_session.commit()
    auth.login(coordinator)
    body = auth.client.get("/patients", query_string={"q": "martineau"}).get_data(as_text=True)
    assert other.display_name in body and patient.display_name not in body
    assert body.count("MARTINEAU") == 1, "another CPTS's patient is not listed"
    body = auth.client.get("/patients", query_string={"birth_date": "1972-03-01"}).get_data(as_text=True)
    assert other.display_name in body and elsewhere.id != other.id
    assert "Nouveau patient" in body


def test_the_list_is_sorted_by_the_name_it_shows(auth, db_session, cpts, coordinator):
    """A patient known by a used name is listed under it: ZOLA, born ABADIE, comes after BERTIN."""
    born_abadie = factories.patient(db_session, cpts, birth_name="ABADIE", used_last_name="Zola")
    bertin = factories.patient(db_session, cpts, birth_name="BERTIN")
    db_session.commit()
    auth.login(coordinator)
    body = auth.client.get("/patients").get_data(as_text=True)
    assert body.index(bertin.display_name) < body.index(born_abadie.display_name) and "ZOLA" in body


def test_bad_search_date_is_explained(auth, coordinator):
    auth.login(coordinator)
    response = auth.client.get("/patients", query_string={"birth_date": "17/05/1980"})
    assert response.status_code == 200
    assert "Date invalide" in field_error(response.get_data(as_text=True), "birth_date")


def test_admin_has_no_patient_pages(auth, db_session, cpts, patient):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    assert auth.client.get("/patients").status_code == 403
    assert auth.client.get(f"/patients/{patient.id}").status_code == 403


# --- creation ----------------------------------------------------------------------------------------------


def test_new_patient_form_is_labelled_in_french(auth, gp):
    auth.login(gp)
    body = auth.client.get("/patients/new").get_data(as_text=True)
    for label in (
        "Nom de naissance",
        "Premier prénom de naissance",
        "Date de naissance",
        "Sexe",
        "Lieu de naissance (code INSEE de la commune, 99xxx si né à l&#39;étranger)",
        "obligatoire pour un mineur",
        "Médecin traitant",
    ):
        assert label in body
    assert 'id="f-birth_date" name="birth_date" type="date"' in body
    assert gp.professional.full_name in body, "the GP is offered as médecin traitant"


def test_create_patient(auth, db_session, gp):
    auth.login(gp)
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH_DATE)
    response = auth.post(
        "/patients/new", patient_form(ins_matricule=nir, attending_gp_id=str(gp.professional_id), phone="0612345678")
    )
    assert response.status_code == 302
    created = db_session.scalar(select(Patient).where(Patient.ins_matricule == nir))
    assert response.headers["Location"] == f"/patients/{created.id}"
    assert (created.birth_name, created.first_birth_given_name) == ("DURAND", "LEA")
    assert created.identity_status is IdentityStatus.PROVISIONAL and created.ins_oid == INS_OID_NIR
    page = auth.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Patient créé (identité provisoire)" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ins_matricule": "280052432212345"}, "ins_matricule", "Le matricule INS est invalide"),
        ({"birth_name": ""}, "birth_name", "Ce champ est obligatoire."),
        ({"sex": ""}, "sex", "Ce champ est obligatoire."),
        ({"birth_place_insee": "123"}, "birth_place_insee", "Le code INSEE doit comporter 5 caractères"),
        ({"birth_date": "2090-01-01"}, "birth_date", "ne peut pas être dans le futur"),
        ({"birth_date": "2015-01-01"}, "legal_representative_name", "Un patient mineur doit avoir un représentant"),
    ],
)
def test_bad_patient_is_refused_next_to_the_field(auth, db_session, gp, overrides, field, message):
    auth.login(gp)
    before = count(db_session, Patient)
    response = auth.post("/patients/new", patient_form(**overrides))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in field_error(body, field)
    assert f'href="#f-{field}"' in body, "the summary links to the field"
    assert 'value="Durand"' in body or field == "birth_name", "what was typed is shown again"
    assert count(db_session, Patient) == before


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        pytest.param({"birth_name": "DU\u200bRAND"}, "birth_name", "Nom de naissance : caractère invisible", id="zw"),
        pytest.param({"birth_name": "DURAND\u202e"}, "birth_name", "(U+202E) non autorisé", id="rtl-override"),
        pytest.param({"first_birth_given_name": "L\u0435a"}, "first_birth_given_name", "(U+0435)", id="cyrillic"),
        pytest.param({"used_first_name": "Léa 💉"}, "used_first_name", "Prénom utilisé : caractère", id="emoji"),
        pytest.param({"used_last_name": "<i>x</i>"}, "used_last_name", "Nom utilisé : caractère « &lt; »", id="markup"),
        pytest.param({"birth_place_insee": "99999"}, "birth_place_insee", "n&#39;existe pas", id="insee-99999"),
        pytest.param({"commune_insee": "00000"}, "commune_insee", "n&#39;existe pas", id="insee-00000"),
    ],
)
def test_identity_traits_outside_the_rniv_are_refused_on_the_form(auth, db_session, gp, overrides, field, message):
    """I5: the field's French message next to it, nothing created."""
    auth.login(gp)
    before = count(db_session, Patient)
    response = auth.post("/patients/new", patient_form(**overrides))
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert count(db_session, Patient) == before


def test_a_look_alike_spelling_is_caught_on_the_form(auth, db_session, cpts, gp):
    """I5: "LÉA" typed with a Cyrillic Е is refused; "Léa " of another GP's patient is a possible duplicate."""
    factories.patient(db_session, cpts, birth_name="DURAND", first_birth_given_name="LEA", birth_date=BIRTH_DATE)
    db_session.commit()
    auth.login(gp)
    before = count(db_session, Patient)
    assert auth.post("/patients/new", patient_form(first_birth_given_name="L\u0415A")).status_code == 422
    response = auth.post("/patients/new", patient_form(birth_name="Durand-Roux", first_birth_given_name="  léa "))
    assert response.status_code == 409 and "Doublon possible" in response.get_data(as_text=True)
    assert count(db_session, Patient) == before


def test_possible_duplicate_outside_ones_care_is_only_said_to_exist(auth, db_session, cpts, gp):
    """I5: a GP without a care relation learns that a possible duplicate exists and is sent to the coordination:
    no name, birth date, sex or identity status, no link, no way to set it aside; the check is audited."""
    existing = factories.patient(
        db_session, cpts, birth_name="DURAND", first_birth_given_name="LEA", birth_date=BIRTH_DATE, sex=Sex.FEMALE
    )
    db_session.commit()
    auth.login(gp)
    before = count(db_session, Patient)

    for form in (patient_form(), patient_form(duplicates_checked="true")):
        response = auth.post("/patients/new", form)
        body = response.get_data(as_text=True)
        assert response.status_code == 409
        assert "Doublon possible" in body and "Demandez à la coordination de la CPTS" in body
        section = body[body.index('id="doublons"') : body.index("</section>")]
        assert "LEA" not in section and "17/05/1980" not in section and "Féminin" not in section
        assert "Provisoire" not in section and f"/patients/{existing.id}" not in body
        assert 'name="duplicates_checked"' not in body
    assert count(db_session, Patient) == before
    lines = audit_events(db_session, "patient.duplicate_check")
    assert [(e.target_id, e.details) for e in lines] == [(str(existing.id), '{"shown": false}')] * 2


def test_possible_duplicate_in_ones_care_is_shown_then_overridden(auth, db_session, cpts, gp):
    existing = factories.patient(
        db_session,
        cpts,
        birth_name="DURAND",
        first_birth_given_name="LEA",
        birth_date=BIRTH_DATE,
        attending_gp_id=gp.professional_id,
    )
    db_session.commit()
    auth.login(gp)
    before = count(db_session, Patient)

    response = auth.post("/patients/new", patient_form())
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Doublon possible" in body and existing.display_name in body
    assert "J&#39;ai vérifié : il s&#39;agit d&#39;une autre personne" in body
    assert f'href="/patients/{existing.id}"' in body
    assert count(db_session, Patient) == before
    shown = audit_events(db_session, "patient.duplicate_check")
    assert [(e.target_id, e.details) for e in shown] == [(str(existing.id), '{"shown": true}')]

    response = auth.post("/patients/new", patient_form(duplicates_checked="true"))
    assert response.status_code == 302
    assert count(db_session, Patient) == before + 1


def test_duplicate_checks_are_rate_limited_on_the_form(auth, db_session, cpts, stranger, monkeypatch):
    """I5: past the hourly number of possible duplicates, the form says so in French (429), nothing created."""
    monkeypatch.setattr(identity, "DUPLICATES_TOLD_PER_HOUR", 2)
    factories.patient(db_session, cpts, birth_name="DURAND", first_birth_given_name="LEA", birth_date=BIRTH_DATE)
    db_session.commit()
    auth.login(stranger)
    before = count(db_session, Patient)
    assert [auth.post("/patients/new", patient_form()).status_code for _ in range(2)] == [409, 409]
    response = auth.post("/patients/new", patient_form(birth_name="Martin", birth_date="1960-01-01"))
    assert response.status_code == 429
    assert "Trop de recherches de doublons en une heure" in response.get_data(as_text=True)
    assert count(db_session, Patient) == before
    assert audit_events(db_session, "patient.duplicate_check", outcome="denied")


def test_duplicate_visible_to_the_user_is_linked(auth, db_session, cpts, gp, patient):
    auth.login(gp)
    form = patient_form(
        birth_name=patient.birth_name, first_birth_given_name="MARIE", birth_date=patient.birth_date.isoformat()
    )
    body = auth.post("/patients/new", form).get_data(as_text=True)
    assert f'href="/patients/{patient.id}"' in body


# --- the record --------------------------------------------------------------------------------------------


def test_record_shows_identity_history_consents_and_team(auth, db_session, cpts, gp, coordinator):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH_DATE)
    record = factories.patient(
        db_session,
        cpts,
        birth_date=BIRTH_DATE,
        ins_matricule=nir,
        ins_oid=INS_OID_NIR,
        attending_gp_id=gp.professional_id,
    )
    nurse = factories.professional(db_session, cpts, last_name="Soignante")
    factories.in_care_team(db_session, record, nurse)
    identity.record_identity_check(
        db_session, coordinator, record, kind=IdentityCheckKind.DOCUMENT, document_type=IdentityDocumentType.PASSPORT
    )
    identity.update_patient(db_session, coordinator, record, {"phone": "0611223344", "birth_place_insee": "24037"})
    identity.record_identity_check(
        db_session,
        gp,
        record,
        kind=IdentityCheckKind.DOCUMENT,
        document_type=IdentityDocumentType.NATIONAL_ID_CARD,
    )
    identity.add_consent(
        db_session,
        gp,
        record,
        {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": utcnow()},
        zone="Europe/Paris",
    )
    db_session.commit()
    auth.login(gp)
    response = auth.client.get(f"/patients/{record.id}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "status-VALI" in body and "Identité validée" in body
    assert "récupérer l'INS par le téléservice INSi" in body, "what is missing for QUAL is explained"
    assert f"{nir}</code> (NIR)" in body and INS_OID_NIR not in body, "the kind of number, not its OID"
    assert "<del>" in body and "Passeport" in body and "Carte nationale d&#39;identité" in body
    assert coordinator.display_name in body and gp.display_name in body
    assert "Télésoin / téléconsultation" in body and "Valide" in body
    assert gp.professional.full_name in body and nurse.full_name in body
    assert "06 11 22 33 44" in body, "the phone written in pairs"
    assert audit_events(db_session, "patient.read")[-1].target_id == str(record.id)


def test_record_page_queries_do_not_grow_with_history(auth, engine, db_session, cpts, coordinator, gp):
    def page_queries(patient_row) -> int:
        statements = []

        def count_statement(*_args):
            statements.append(1)

        event.listen(engine, "before_cursor_execute", count_statement)
        try:
            assert auth.client.get(f"/patients/{patient_row.id}").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count_statement)
        return len(statements)

    short, long = factories.patient(db_session, cpts), factories.patient(db_session, cpts)
    for row, checkers in ((short, [gp]), (long, [factories.user(db_session, cpts) for _ in range(5)])):
        for checker in checkers:
            identity.record_identity_check(
                db_session, checker, row, kind=IdentityCheckKind.DOCUMENT, document_type=IdentityDocumentType.PASSPORT
            )
            identity.add_consent(
                db_session,
                checker,
                row,
                {"kind": ConsentKind.DMP_ACCESS, "method": ConsentMethod.WRITTEN, "collected_at": utcnow()},
                zone="Europe/Paris",
            )
            factories.in_care_team(db_session, row, checker.professional)
    db_session.commit()
    auth.login(coordinator)
    page_queries(short)  # warm-up
    assert page_queries(long) == page_queries(short)


def test_professional_without_care_relation_gets_404_everywhere(auth, db_session, cpts, stranger, patient):
    consent = identity.add_consent(
        db_session,
        stranger,
        patient,
        {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": utcnow()},
        zone="Europe/Paris",
    )
    db_session.commit()
    auth.login(stranger)
    attempts = {
        "patient.read": lambda: auth.client.get(f"/patients/{patient.id}"),
        "patient.update": lambda: auth.post(f"/patients/{patient.id}/edit", patient_form()),
        "patient.identity_check": lambda: auth.post(
            f"/patients/{patient.id}/identity-checks", {"check_kind": "document", "document_type": "cni"}
        ),
        "consent.add": lambda: auth.post(
            f"/patients/{patient.id}/consents", {"kind": "telehealth", "method": "oral", "collected_on": "2024-01-02"}
        ),
        "consent.withdraw": lambda: auth.post(
            f"/patients/{patient.id}/consents/{consent.id}/withdraw", {"reason": "test"}
        ),
        "care_team.add": lambda: auth.post(
            f"/patients/{patient.id}/care-team", {"professional_id": stranger.professional_id}
        ),
        "care_team.remove": lambda: auth.post(f"/patients/{patient.id}/care-team/{stranger.professional_id}/remove"),
    }
    for action, attempt in attempts.items():
        response = attempt()
        assert response.status_code == 404, action
        assert "Patient introuvable" in response.get_data(as_text=True)
        denied = audit_events(db_session, action, outcome="denied")
        assert denied and denied[-1].actor_user_id == stranger.id and denied[-1].target_id == str(patient.id), action
    assert auth.client.get(f"/patients/{patient.id}/edit").status_code == 404
    db_session.expire_all()
    assert not patient.identity_checks and consent.is_valid
    assert count(db_session, CareTeamMember) == 0


# --- actions of the record ---------------------------------------------------------------------------------


def test_identity_checks_lead_to_a_qualified_identity(auth, db_session, cpts, gp):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH_DATE)
    row = factories.patient(
        db_session, cpts, birth_date=BIRTH_DATE, ins_matricule=nir, attending_gp_id=gp.professional_id
    )
    db_session.commit()
    auth.login(gp)
    url = f"/patients/{row.id}/identity-checks"
    response = auth.post(url, {"check_kind": "document", "document_type": "passeport", "note": "vue en consultation"})
    assert response.status_code == 302 and response.headers["Location"] == f"/patients/{row.id}"
    assert auth.post(url, {"check_kind": "ins_retrieval"}).status_code == 302
    db_session.refresh(row)
    assert row.identity_status is IdentityStatus.QUALIFIED
    body = auth.client.get(f"/patients/{row.id}").get_data(as_text=True)
    assert "Identité qualifiée" in body and "vue en consultation" in body


def test_identity_check_without_document_type_is_refused(auth, db_session, gp, patient):
    auth.login(gp)
    before = count(db_session, IdentityCheck)
    response = auth.post(f"/patients/{patient.id}/identity-checks", {"check_kind": "document"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(body, "document_type") == "Indiquez la pièce d&#39;identité présentée."
    assert count(db_session, IdentityCheck) == before
    assert audit_events(db_session, "patient.read")[-1].target_id == str(patient.id), "the page shown is traced"


def test_identity_check_kind_is_required(auth, db_session, gp, patient):
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/identity-checks", {"document_type": "cni"})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "check_kind") == "Ce champ est obligatoire."


def test_ins_retrieval_needs_a_matricule(auth, db_session, gp, patient):
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/identity-checks", {"check_kind": "ins_retrieval"})
    assert response.status_code == 422
    assert "Renseignez le matricule INS" in response.get_data(as_text=True)
    assert count(db_session, IdentityCheck) == 0


def test_add_consent_on_a_day(auth, db_session, gp, patient):
    auth.login(gp)
    today = utcnow().date().isoformat()
    response = auth.post(
        f"/patients/{patient.id}/consents", {"kind": "telehealth", "method": "written", "collected_on": today}
    )
    assert response.status_code == 302
    consent = db_session.scalar(select(Consent).where(Consent.patient_id == patient.id))
    # Only the day was asked: the day is recorded, no made-up time.
    assert consent.kind is ConsentKind.TELEHEALTH and consent.collected_on.isoformat() == today
    assert consent.collected_at is None and consent.collected_by_professional_id == gp.professional_id
    response = auth.post(
        f"/patients/{patient.id}/consents", {"kind": "dmp_access", "method": "oral", "collected_on": "2024-03-31"}
    )
    assert response.status_code == 302
    consent = db_session.scalar(select(Consent).where(Consent.kind == ConsentKind.DMP_ACCESS))
    assert (consent.collected_on, consent.collected_at) == (dt.date(2024, 3, 31), None)
    page = auth.client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "<td>31 mars 2024</td>" in page and "12 h 00" not in page


def test_consent_in_the_future_is_refused_next_to_its_date(auth, db_session, gp, patient):
    auth.login(gp)
    tomorrow = (utcnow() + dt.timedelta(days=2)).date().isoformat()
    response = auth.post(
        f"/patients/{patient.id}/consents", {"kind": "telehealth", "method": "oral", "collected_on": tomorrow}
    )
    assert response.status_code == 422
    assert "ne peut pas être dans le futur" in field_error(response.get_data(as_text=True), "collected_on")
    assert count(db_session, Consent) == 0


def test_withdraw_consent(auth, db_session, gp, patient):
    consent = identity.add_consent(
        db_session,
        gp,
        patient,
        {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": utcnow()},
        zone="Europe/Paris",
    )
    db_session.commit()
    auth.login(gp)
    url = f"/patients/{patient.id}/consents/{consent.id}/withdraw"
    response = auth.post(url, {"reason": ""})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "reason") == "Ce champ est obligatoire."
    assert auth.post(url, {"reason": "Ne souhaite plus de téléconsultation"}).status_code == 302
    db_session.refresh(consent)
    assert not consent.is_valid and consent.withdrawal_reason == "Ne souhaite plus de téléconsultation"
    body = auth.client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Retiré" in body and "Ne souhaite plus de téléconsultation" in body
    response = auth.post(url, {"reason": "encore"})
    assert response.status_code == 409 and "déjà été retiré" in response.get_data(as_text=True)


def test_consent_of_another_patient_is_not_found(auth, db_session, cpts, gp, patient):
    other = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    consent = identity.add_consent(
        db_session,
        gp,
        other,
        {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": utcnow()},
        zone="Europe/Paris",
    )
    db_session.commit()
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/consents/{consent.id}/withdraw", {"reason": "x"})
    assert response.status_code == 404


def test_care_team_add_and_remove(auth, db_session, cpts, gp, patient):
    nurse = factories.professional(db_session, cpts, Profession.NURSE)
    foreign = factories.professional(db_session, factories.cpts(db_session), Profession.NURSE)
    db_session.commit()
    auth.login(gp)
    body = auth.client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert f'<option value="{nurse.id}">' in body and f'<option value="{foreign.id}">' not in body

    url = f"/patients/{patient.id}/care-team"
    assert auth.post(url, {"professional_id": nurse.id}).status_code == 302
    assert db_session.get(CareTeamMember, (patient.id, nurse.id)) is not None
    response = auth.post(url, {"professional_id": nurse.id})
    assert response.status_code == 422
    assert "déjà partie de l&#39;équipe" in field_error(response.get_data(as_text=True), "professional_id")
    response = auth.post(url, {"professional_id": foreign.id})
    assert response.status_code == 422
    assert db_session.get(CareTeamMember, (patient.id, foreign.id)) is None

    assert auth.post(f"{url}/{nurse.id}/remove").status_code == 302
    db_session.expire_all()
    assert db_session.get(CareTeamMember, (patient.id, nurse.id)) is None
    assert [e.action for e in audit_events(db_session, "care_team.remove")] == ["care_team.remove"]


def test_leaving_the_care_team_goes_back_to_the_list(auth, db_session, cpts, patient):
    nurse_user = factories.user(db_session, cpts, Role.PROFESSIONAL)
    factories.in_care_team(db_session, patient, nurse_user.professional)
    db_session.commit()
    auth.login(nurse_user)
    response = auth.post(f"/patients/{patient.id}/care-team/{nurse_user.professional_id}/remove")
    assert response.status_code == 302 and response.headers["Location"] == "/patients"
    assert auth.client.get(f"/patients/{patient.id}").status_code == 404


# --- edition -----------------------------------------------------------------------------------------------


def test_edit_form_is_prefilled_and_warns(auth, gp, patient):
    auth.login(gp)
    body = auth.client.get(f"/patients/{patient.id}/edit").get_data(as_text=True)
    assert f'value="{patient.birth_name}"' in body and f'value="{patient.birth_date.isoformat()}"' in body
    assert '<option value="F" selected>' in body
    assert "remet l'identité au statut <strong>provisoire</strong>" in body


def test_edit_contact_keeps_the_identity(auth, db_session, gp, patient):
    identity.record_identity_check(
        db_session, gp, patient, kind=IdentityCheckKind.DOCUMENT, document_type=IdentityDocumentType.PASSPORT
    )
    db_session.commit()
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/edit", {"phone": "06 12 34 56 78", "address": "1 rue du Pont"})
    assert response.status_code == 302
    db_session.refresh(patient)
    assert patient.phone == "0612345678" and patient.identity_status is IdentityStatus.VALIDATED


def test_changing_a_strict_trait_makes_the_identity_provisional(auth, db_session, gp, patient):
    identity.record_identity_check(
        db_session, gp, patient, kind=IdentityCheckKind.DOCUMENT, document_type=IdentityDocumentType.PASSPORT
    )
    db_session.commit()
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/edit", {"first_birth_given_name": "Marie-Claire"})
    assert response.status_code == 302
    db_session.refresh(patient)
    assert patient.identity_status is IdentityStatus.PROVISIONAL
    assert "repassée au statut provisoire" in auth.client.get(response.headers["Location"]).get_data(as_text=True)


def test_bad_edit_changes_nothing(auth, db_session, gp, patient):
    auth.login(gp)
    response = auth.post(f"/patients/{patient.id}/edit", {"phone": "12", "ins_matricule": "180012432212345"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "numéro français" in field_error(body, "phone")
    assert "Le matricule INS est invalide" in field_error(body, "ins_matricule")
    db_session.refresh(patient)
    assert patient.phone is None and patient.ins_matricule is None


def test_consent_collected_this_morning_is_not_in_the_future(auth, db_session, gp, patient):
    # The whole visit happens in the past: a session cookie signed in the future would be refused.
    with time_machine.travel(dt.datetime(2025, 1, 15, 7, 30, tzinfo=dt.UTC), tick=False):
        auth.login(gp)
        response = auth.post(
            f"/patients/{patient.id}/consents", {"kind": "telehealth", "method": "oral", "collected_on": "2025-01-15"}
        )
    assert response.status_code == 302, response.headers.get("Location")
    assert response.headers["Location"] == f"/patients/{patient.id}"
    consent = db_session.scalar(select(Consent).where(Consent.patient_id == patient.id))
    assert (consent.collected_on, consent.collected_at) == (dt.date(2025, 1, 15), None)


def test_record_page_forms_are_accessible(auth, db_session, cpts, gp, patient):
    for _ in range(2):
        identity.add_consent(
            db_session,
            gp,
            patient,
            {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": utcnow()},
            zone="Europe/Paris",
        )
    factories.in_care_team(db_session, patient, factories.professional(db_session, cpts))
    db_session.commit()
    auth.login(gp)
    for url in (f"/patients/{patient.id}", "/patients/new", f"/patients/{patient.id}/edit"):
        body = auth.client.get(url).get_data(as_text=True)
        ids = re.findall(r'\sid="([^"]+)"', body)
        assert len(ids) == len(set(ids)), f"duplicate ids on {url}"
        labelled = set(re.findall(r'<label[^>]*\sfor="([^"]+)"', body))
        fields = re.findall(r'<(?:input|select|textarea)\b(?![^>]*type="hidden")[^>]*\sid="([^"]+)"', body)
        assert fields and set(fields) <= labelled, f"unlabelled fields on {url}"
        assert body.count('name="csrf_token"') >= body.count('method="post"')
