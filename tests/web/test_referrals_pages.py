import hashlib
import html
import io
import re

import pytest
from sqlalchemy import event, func, select

from hub.db import utcnow
from hub.models import AuditEvent, CareTeamMember, IdentityStatus, Patient, Profession, Referral, ReferralState, Urgency
from tests import factories
from tests.api import test_referrals_api as api_tests
from tests.api.test_referrals_api import ASSISTED_CHECKLIST, PARIS, PDF, next_monday_14h

# The API tests' world, shared: the GP, their patient, the cardiology program and next Monday's slot.
hub = api_tests.hub


def send_form(auth, hub, **overrides):
    data = {
        "patient_id": str(hub["patient"].id),
        "target_program_id": str(hub["program"].id),
        "reason": "Dyspnée d'effort",
        "current_treatment": "Furosémide 40 mg",
        "urgency": "soon",
        "needs": ["illectronisme", "mobilite_reduite"],
        "consent_collected_on": utcnow().astimezone(PARIS).date().isoformat(),
        "file1": (io.BytesIO(PDF), "ordonnance bilan.pdf", "application/pdf"),
        "kind1": "biology_prescription",
        "submit": "send",
    }
    return auth.post("/referrals/new", data=data | overrides, content_type="multipart/form-data")


def test_walk_through_in_the_browser(client, auth, hub, db_session):
    auth.login(hub["gp"])
    page = client.get("/referrals/new")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Nouvel adressage" in text and "Troubles de l&#39;audition" in text and "Mes adressages" in text
    sent = send_form(auth, hub)
    assert sent.status_code == 302, sent.get_data(as_text=True)
    referral = db_session.scalar(select(Referral))
    assert referral.state is ReferralState.SUBMITTED and len(referral.attachments) == 1
    assert "Envoyé" in client.get("/referrals/mine").get_data(as_text=True)

    auth.login(hub["coordinator"])
    queue = client.get("/referrals/triage").get_data(as_text=True)
    assert "Adressages à trier" in queue and hub["patient"].display_name in queue and "En attente depuis" in queue
    assert f'href="/referrals/{referral.id}">{html.escape(hub["patient"].display_name)}</a>' in queue
    assert "1 document joint ; besoins : illectronisme, mobilité réduite" in queue
    shown = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    for seen in (
        "Dyspnée d&#39;effort",
        "Furosémide 40 mg",
        "Ordonnance de bilan biologique",
        "ordonnance_bilan.pdf, 45\u00a0octets",
    ):
        assert seen in shown
    assert "Illectronisme" in shown and "Mobilité réduite" in shown and "Urgence : Sous 15 jours" in shown
    assert "Télésoin / téléconsultation — recueilli le " in shown and "12 h 00" not in shown
    assert "Envoyé à la coordination" in shown and f'href="/referrals/{referral.id}/letter.pdf"' in shown
    accepted = auth.post(f"/referrals/{referral.id}/accept")
    assert accepted.status_code == 302 and accepted.headers["Location"].endswith(f"/referrals/{referral.id}#programmer")

    # The checklist is on the referral's page, pre-filled from its needs; nothing is booked before it.
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "1. Éligibilité au soin à distance" in page and "Retour au dossier" not in page
    assert 'id="f-illectronism-true" name="illectronism" value="true" checked' in page
    assert 'id="f-mobility_issues-true" name="mobility_issues" value="true" checked' in page
    schedule = {"slot_id": hub["slot"].id, "place_kind": "domicile"}
    refused = auth.post(f"/referrals/{referral.id}/schedule", data=schedule)
    assert refused.status_code == 422
    assert "Vérifiez d&#39;abord l&#39;éligibilité du patient" in refused.get_data(as_text=True)
    db_session.refresh(referral)
    assert referral.state is ReferralState.ACCEPTED and referral.appointment_id is None
    answers = {key: str(value).lower() for key, value in ASSISTED_CHECKLIST.items()}
    assessed = auth.post(f"/referrals/{referral.id}/eligibility", data=answers)
    assert assessed.status_code == 302, assessed.get_data(as_text=True)

    # Next Monday's slot, at home (reduced mobility), the patient's own IDEL proposed first.
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f'<option value="{hub["slot"].id}" selected>lundi ' in page
    assert '<option value="domicile" selected>Domicile (organisé spécifiquement) (proposé)</option>' in page
    idel = hub["idel"]
    assert f'value="{idel.id}" checked' in page and "IDEL du patient · 0,0\u00a0km" in page
    at_an_officine = auth.post(
        f"/referrals/{referral.id}/schedule", data=schedule | {"place_kind": "officine", "accompanying_id": idel.id}
    )
    shown = html.unescape(at_an_officine.get_data(as_text=True))
    assert at_an_officine.status_code == 422 and "se réserve dans un programme de téléconsultation en officine" in shown
    assert f'<option value="{hub["slot"].id}" selected>' in shown, "the slot that was sent, shown again"
    assert '<option value="domicile" selected>' in shown, "a place the program cannot take falls back to the proposed"
    done = auth.post(f"/referrals/{referral.id}/schedule", data=schedule | {"accompanying_id": idel.id})
    assert done.status_code == 302 and done.headers["Location"].endswith("/referrals/triage")
    queue = client.get("/referrals/triage").get_data(as_text=True)
    assert f"accompagné par {html.escape(idel.full_name)}" in queue and "Envoyés (0)" in queue
    db_session.expire_all()
    appointment = db_session.get(Referral, referral.id).appointment
    assert (appointment.place_kind.value, appointment.accompanying_id) == ("domicile", idel.id)

    auth.login(hub["gp"])
    mine = client.get("/referrals/mine").get_data(as_text=True)
    monday = next_monday_14h()
    assert "Programmé" in mine and "programmé le lundi " in mine and f"{monday.year}, 14 h 00" in mine
    download = client.get(f"/referrals/{referral.id}/attachments/{referral.attachments[0].id}")
    assert download.data == PDF and download.headers["X-Content-Type-Options"] == "nosniff"
    letter = client.get(f"/referrals/{referral.id}/letter.pdf")
    assert letter.data.startswith(b"%PDF-") and letter.headers["Content-Disposition"].startswith("attachment")
    # The GP reads the referral's page, without the triage, with its history.
    shown = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Accepté par la coordination" in shown and "Programmé" in shown and "Trier l&#39;adressage" not in shown
    assert 'action="/referrals/' not in shown.split("<main", 1)[-1].split("Historique")[0]
    # The médecin traitant sees the scheduled teleconsultation on the patient's timeline.
    record = client.get(f"/patients/{hub['patient'].id}").get_data(as_text=True)
    assert "Rendez-vous — Téléconsultation assistée" in record and "Adressage" in record


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reason": ""}, "Indiquez le motif de l&#39;adressage."),
        ({"consent_collected_on": "2026-02-31"}, "Date invalide"),
        ({"target_program_id": "999999"}, "Programme inconnu dans la CPTS."),
        ({"file1": (io.BytesIO(b"du texte"), "faux.pdf", "application/pdf")}, "Format non accepté"),
    ],
)
def test_a_refused_form_says_why_in_french_and_saves_nothing(client, auth, hub, db_session, overrides, message):
    auth.login(hub["gp"])
    response = send_form(auth, hub, **overrides)
    assert response.status_code in (400, 409, 422)
    assert message in response.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Referral)) == 0


def test_a_reject_without_a_reason_is_shown_again(client, auth, hub, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    auth.login(hub["coordinator"])
    response = auth.post(f"/referrals/{referral.id}/reject", data={"reason": ""})
    assert response.status_code == 422 and "Ce champ est obligatoire." in response.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state is ReferralState.SUBMITTED


def test_another_gp_does_not_see_the_referral(client, auth, hub, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    auth.login(hub["other_gp"])
    assert hub["patient"].display_name not in client.get("/referrals/mine").get_data(as_text=True)
    assert client.get(f"/referrals/{referral.id}/letter.pdf").status_code == 404
    assert client.get(f"/referrals/{referral.id}/attachments/{referral.attachments[0].id}").status_code == 404


def statements_into(statements: list):
    def listener(_conn, _cursor, statement, *_args):
        statements.append(statement)

    return listener


@pytest.mark.parametrize(("who", "url"), [("coordinator", "/referrals/triage"), ("gp", "/referrals/mine")])
def test_pages_keep_a_constant_number_of_queries(client, auth, hub, cpts, db_session, engine, who, url):
    """P6: 3 or 30 referrals, the same number of queries for the page."""
    auth.login(hub[who])
    counts = []
    for size in (3, 30):
        while (made := db_session.scalar(select(func.count()).select_from(Referral))) < size:
            patient = factories.patient(db_session, cpts, attending_gp_id=hub["gp"].professional_id)
            db_session.add(
                Referral(
                    cpts_id=patient.cpts_id,
                    patient_id=patient.id,
                    author_id=hub["gp"].professional_id,
                    created_by_user_id=hub["gp"].id,
                    target_program_id=hub["program"].id,
                    reason="Suivi",
                    urgency=Urgency.SOON,
                    # Both sections of the queue: to triage, and accepted with their free slots.
                    state=ReferralState.SUBMITTED if made % 2 else ReferralState.ACCEPTED,
                    submitted_at=utcnow(),
                )
            )
            db_session.flush()
        db_session.commit()
        statements = []
        listener = statements_into(statements)
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_a_draft_is_sent_later_and_a_referral_cancelled_with_a_reason(client, auth, hub, db_session):
    auth.login(hub["gp"])
    assert send_form(auth, hub, submit="draft", consent_collected_on="").status_code == 302
    referral = db_session.scalar(select(Referral))
    assert referral.state is ReferralState.DRAFT
    assert "Brouillon" in client.get("/referrals/mine").get_data(as_text=True)
    refused = auth.post(f"/referrals/{referral.id}/submit", data={"consent_collected_on": "pas une date"})
    assert refused.status_code == 422 and "Date invalide" in refused.get_data(as_text=True)
    today = utcnow().astimezone(PARIS).date().isoformat()
    assert auth.post(f"/referrals/{referral.id}/submit", data={"consent_collected_on": today}).status_code == 302
    no_reason = auth.post(f"/referrals/{referral.id}/cancel", data={"reason": ""})
    assert no_reason.status_code == 422 and "Ce champ est obligatoire." in no_reason.get_data(as_text=True)
    assert auth.post(f"/referrals/{referral.id}/cancel", data={"reason": "Le patient a déménagé"}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state is ReferralState.CANCELLED
    assert "Annulé" in client.get("/referrals/mine").get_data(as_text=True)


def test_the_navigation_shows_referrals_to_gps_and_the_queue_to_coordinators(client, auth, hub):
    auth.login(hub["gp"])
    home = client.get("/").get_data(as_text=True)
    assert "Nouvel adressage" in home and "Mes adressages" in home and "Adressages à trier" not in home
    auth.login(hub["cardiologist"])
    assert "Nouvel adressage" not in client.get("/").get_data(as_text=True)
    auth.login(hub["coordinator"])
    home = client.get("/").get_data(as_text=True)
    assert "Adressages à trier" in home and "Nouvel adressage" not in home


def test_a_referral_to_a_specialist_is_scheduled_into_one_of_their_programs(client, auth, hub, cpts, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub, target_program_id="", target_specialist_id=str(hub["cardiologist"].professional_id))
    referral = db_session.scalar(select(Referral))
    auth.login(hub["coordinator"])
    auth.post(f"/referrals/{referral.id}/accept")
    other = factories.program(db_session, cpts)
    elsewhere = factories.slot(db_session, other, next_monday_14h())
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f'<option value="{hub["slot"].id}" selected>lundi ' in page and "Téléconsultation cardiologie" in page
    assert f'<option value="{elsewhere.id}"' not in page
    refused = auth.post(
        f"/referrals/{referral.id}/schedule", data={"slot_id": elsewhere.id, "place_kind": "lieu_dedie"}
    )
    assert refused.status_code == 422 and "spécialiste visé" in refused.get_data(as_text=True)
    done = auth.post(f"/referrals/{referral.id}/schedule", data={"slot_id": hub["slot"].id, "place_kind": "lieu_dedie"})
    assert done.status_code == 302
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state is ReferralState.SCHEDULED


def test_the_letter_is_frozen_when_scheduled_and_is_the_appointments_document(client, auth, hub, db_session, uploads):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    draft_letter = client.get(f"/referrals/{referral.id}/letter.pdf")
    assert draft_letter.status_code == 200 and referral.letter_sha256 is None  # rendered on demand until then
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    auth.login(hub["coordinator"])
    auth.post(f"/referrals/{referral.id}/accept")
    scheduled = auth.post(f"/referrals/{referral.id}/schedule", data={"slot_id": hub["slot"].id})
    assert scheduled.status_code == 302
    db_session.expire_all()
    referral = db_session.get(Referral, referral.id)
    frozen = (uploads / referral.letter_sha256[:2] / referral.letter_sha256).read_bytes()
    assert hashlib.sha256(frozen).hexdigest() == referral.letter_sha256 and len(frozen) == referral.letter_size

    # Whatever changes in the referral afterwards, its letter stays the one sent with the appointment.
    referral.reason = "Motif réécrit après coup"
    db_session.commit()
    auth.login(hub["gp"])
    assert client.get(f"/referrals/{referral.id}/letter.pdf").data == frozen
    auth.login(hub["cardiologist"])
    agenda = client.get(f"/agenda?day={next_monday_14h().date().isoformat()}").get_data(as_text=True)
    url = f"/referrals/appointments/{referral.appointment_id}/letter.pdf"
    assert f'href="{url}">Lettre d\'adressage</a>' in agenda
    served = client.get(url)
    assert served.status_code == 200 and served.data == frozen and served.mimetype == "application/pdf"
    reads = select(func.count()).where(AuditEvent.action == "referral.letter_read", AuditEvent.outcome == "success")
    assert db_session.scalar(reads) == 3  # the draft's, the GP's and the cardiologist's

    # No care relation: no letter, whichever way it is asked for, and the denial is audited.
    auth.login(hub["other_gp"])
    assert client.get(url).status_code == 404
    assert client.get(f"/referrals/{referral.id}/letter.pdf").status_code == 404
    denied = select(func.count()).where(AuditEvent.outcome == "denied", AuditEvent.actor_user_id == hub["other_gp"].id)
    assert db_session.scalar(denied) == 2


def test_an_appointment_without_referral_has_no_letter(client, auth, hub, db_session):
    from workflows import appointments

    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    appointment = appointments.book(
        db_session, hub["coordinator"], slot=hub["slot"], patient=hub["patient"], place_kind="lieu_dedie"
    )
    db_session.commit()
    auth.login(hub["coordinator"])
    assert client.get(f"/referrals/appointments/{appointment.id}/letter.pdf").status_code == 404


# --- « Nouvel adressage » for a patient the GP creates ---------------------------------------------------------

TRAITS = {
    "patient_id": "",
    "birth_name": "Vidal",
    "first_birth_given_name": "Jeanne",
    "birth_date": "1941-06-12",
    "sex": "F",
    "birth_place_insee": "24037",
}


def patient_and_referral_counts(session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Patient)),
        session.scalar(select(func.count()).select_from(Referral)),
    )


def test_the_gp_creates_the_patient_from_the_referral_form(client, auth, hub, db_session):
    auth.login(hub["gp"])
    page = client.get("/referrals/new").get_data(as_text=True)
    assert "ou créer le patient" in page and "Premier prénom de naissance" in page
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    sent = send_form(auth, hub, **TRAITS)
    assert sent.status_code == 302, sent.get_data(as_text=True)
    referral = db_session.scalar(select(Referral))
    patient = db_session.get(Patient, referral.patient_id)
    assert (patient.birth_name, patient.identity_status) == ("VIDAL", IdentityStatus.PROVISIONAL)
    assert referral.state is ReferralState.SUBMITTED and referral.patient_id != hub["patient"].id
    assert db_session.get(CareTeamMember, (patient.id, hub["gp"].professional_id)) is not None
    created = select(func.count()).where(
        AuditEvent.action == "patient.create", AuditEvent.target_id == str(patient.id), AuditEvent.id > audited_before
    )
    assert db_session.scalar(created) == 1


def test_a_possible_duplicate_is_shown_before_creation_then_picked(client, auth, hub, db_session):
    existing = hub["patient"]
    same = TRAITS | {"birth_name": existing.birth_name, "birth_date": existing.birth_date.isoformat()}
    auth.login(hub["gp"])
    before = patient_and_referral_counts(db_session)
    shown = send_form(auth, hub, **same)
    assert shown.status_code == 409
    page = shown.get_data(as_text=True)
    assert "Doublon possible" in page and existing.display_name in page
    assert f'name="candidate_id" value="{existing.id}"' in page  # the GP's own patient may be picked
    assert "J&#39;ai vérifié : il s&#39;agit d&#39;une autre personne" in page
    assert patient_and_referral_counts(db_session) == before
    shown_audit = select(func.count()).where(AuditEvent.action == "patient.duplicate_check")
    assert db_session.scalar(shown_audit) == 1

    picked = send_form(auth, hub, **same, candidate_id=str(existing.id))
    assert picked.status_code == 302, picked.get_data(as_text=True)
    assert patient_and_referral_counts(db_session) == (before[0], before[1] + 1)
    assert db_session.scalar(select(Referral)).patient_id == existing.id


def test_a_possible_duplicate_set_aside_creates_the_patient(client, auth, hub, db_session):
    existing = hub["patient"]
    same = TRAITS | {"birth_name": existing.birth_name, "birth_date": existing.birth_date.isoformat()}
    auth.login(hub["gp"])
    before = patient_and_referral_counts(db_session)
    confirmed = send_form(auth, hub, **same, duplicates_checked="true")
    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)
    assert patient_and_referral_counts(db_session) == (before[0] + 1, before[1] + 1)
    assert db_session.scalar(select(Referral)).patient_id != existing.id


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"birth_place_insee": "2403"}, "birth_place_insee", "Le code INSEE doit comporter 5 caractères"),
        ({"birth_date": "2041-06-12"}, "birth_date", "La date de naissance ne peut pas être dans le futur."),
        ({"birth_date": "1941-02-30"}, "birth_date", "Date invalide"),
        ({"ins_matricule": "241062403700199"}, "ins_matricule", "clé de contrôle"),
        ({"sex": ""}, "sex", "Ce champ est obligatoire."),
        # The referral's own errors and the traits' show at once.
        ({"target_program_id": "abc", "birth_place_insee": "2403"}, "target_program_id", "Nombre entier attendu."),
        ({"target_program_id": "abc", "birth_place_insee": "2403"}, "birth_place_insee", "Le code INSEE doit"),
    ],
)
def test_bad_traits_are_shown_next_to_their_field_and_nothing_is_saved(
    client, auth, hub, db_session, overrides, field, message
):
    auth.login(hub["gp"])
    before = patient_and_referral_counts(db_session)
    response = send_form(auth, hub, **(TRAITS | overrides))
    assert response.status_code == 422
    shown = re.search(f'<div class="field-error" id="e-{field}">([^<]*)</div>', response.get_data(as_text=True))
    assert shown and message in html.unescape(shown.group(1))
    assert patient_and_referral_counts(db_session) == before


def test_an_existing_patient_and_new_traits_together_are_refused(client, auth, hub, db_session):
    auth.login(hub["gp"])
    before = patient_and_referral_counts(db_session)
    response = send_form(auth, hub, **(TRAITS | {"patient_id": str(hub["patient"].id)}))
    assert response.status_code == 422 and "pas les deux" in response.get_data(as_text=True)
    assert patient_and_referral_counts(db_session) == before


def test_the_sessions_professionals_read_the_attachments_of_a_referral_to_a_program(client, auth, hub, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    assert referral.target_specialist_id is None, "addressed to the program, not to a named specialist"
    (attachment,) = referral.attachments
    url = f"/referrals/{referral.id}/attachments/{attachment.id}"
    auth.login(hub["cardiologist"])
    assert client.get(url).status_code == 404, "before scheduling, the program's cardiologist is not in the loop"
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    auth.login(hub["coordinator"])
    auth.post(f"/referrals/{referral.id}/accept")
    assert auth.post(f"/referrals/{referral.id}/schedule", data={"slot_id": hub["slot"].id}).status_code == 302
    auth.login(hub["cardiologist"])
    served = client.get(url)
    assert served.status_code == 200 and served.data == PDF
    auth.login(hub["other_gp"])
    assert client.get(url).status_code == 404


def test_a_patient_id_that_cannot_be_a_row_id_shows_the_form_again(client, auth, hub):
    # "²" passes str.isdigit() but not int(); 30 digits overflow the database's integer: both used to be a 500.
    auth.login(hub["gp"])
    assert client.get("/referrals/new", query_string={"patient_id": "²"}).status_code == 200
    refused = send_form(auth, hub, patient_id="²")
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert client.get("/referrals/new", query_string={"patient_id": "9" * 30}).status_code == 200
    refused = send_form(auth, hub, patient_id="9" * 30)
    assert refused.status_code == 422 and "Nombre hors des limites acceptées" in refused.get_data(as_text=True)


# --- the GP's form names what is missing; the referral's page (issue 12, item 2) --------------------------


def field_error(page: str, field: str) -> str | None:
    shown = re.search(f'<div class="field-error" id="e-{field}">([^<]*)</div>', page)
    return html.unescape(shown.group(1)) if shown else None


def test_an_empty_referral_names_each_missing_field(client, auth, hub, db_session):
    auth.login(hub["gp"])
    before = patient_and_referral_counts(db_session)
    empty = {"patient_id": "", "target_program_id": "", "reason": "", "current_treatment": "", "needs": []}
    response = send_form(auth, hub, **empty, consent_collected_on="", file1=(io.BytesIO(b""), ""))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert (
        field_error(page, "patient_id")
        == "Choisissez un de vos patients, ou saisissez les traits d'un nouveau patient."
    )
    assert field_error(page, "reason") == "Indiquez le motif de l'adressage."
    assert field_error(page, "target_program_id").startswith("Choisissez à qui adresser le patient")
    assert field_error(page, "consent_collected_on").startswith("Indiquez la date du recueil du consentement")
    assert "Le formulaire contient 4 erreurs" in page and "Patient inconnu" not in page
    assert 'href="#f-consent_collected_on"' in page  # the summary leads to each field
    assert patient_and_referral_counts(db_session) == before


def test_a_consent_in_force_stands_for_the_date_and_a_draft_needs_only_its_patient(client, auth, hub, db_session):
    factories.consent(db_session, hub["patient"], recorded_by=hub["gp"])
    db_session.commit()
    auth.login(hub["gp"])
    assert send_form(auth, hub, consent_collected_on="").status_code == 302
    draft = send_form(auth, hub, patient_id="", submit="draft", reason="", consent_collected_on="")
    assert draft.status_code == 422
    page = draft.get_data(as_text=True)
    assert field_error(page, "patient_id").startswith("Choisissez un de vos patients") and not field_error(
        page, "reason"
    )


def test_the_referral_page_is_the_authors_and_the_coordinations_only(client, auth, hub, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    for who in ("other_gp", "stranger", "cardiologist"):
        auth.login(hub[who])
        assert client.get(f"/referrals/{referral.id}").status_code == 404, who
    denied = select(func.count()).where(AuditEvent.action == "referral.read", AuditEvent.outcome == "denied")
    assert db_session.scalar(denied) == 3
    auth.login(hub["gp"])
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Lettre d'adressage (PDF)" in page and "Accepter" not in page
    assert auth.post(f"/referrals/{referral.id}/accept").status_code == 403


def test_the_page_ranks_the_idels_by_commune_name_and_distance(client, auth, hub, cpts, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub, needs=["illectronisme"])
    referral = db_session.scalar(select(Referral))
    far = factories.professional(db_session, cpts, commune_insee="24581", accompanies_teleconsultation=True)
    near = factories.professional(db_session, cpts, commune_insee="24094", accompanies_teleconsultation=True)
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    auth.login(hub["coordinator"])
    auth.post(f"/referrals/{referral.id}/accept")
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    section = page.split('id="programmer"', 1)[1]
    order = [section.index(f'value="{p.id}"') for p in (hub["idel"], near, far)]
    assert order == sorted(order), "the patient's own IDEL, then the nearest"
    assert "Chalagnac<br>" in section and "Villamblard<br>" in section
    assert "5,8\u00a0km · 0 visite ce mois · 0 proposition en attente" in section, "why each ranks there"
    assert "12,1\u00a0km · 0 visite ce mois" in section
    assert not re.search(r"\b24\d{3}\b", section), "commune names, never INSEE codes"
    assert '<option value="lieu_dedie" selected>Lieu dédié à la téléconsultation (proposé)</option>' in section
    # Another slot or place is chosen by the GET form; the IDELs follow it.
    at_home = client.get(f"/referrals/{referral.id}", query_string={"slot": hub["slot"].id, "place_kind": "domicile"})
    assert f'value="{near.id}"' not in at_home.get_data(as_text=True), "no home visits in the patient's commune"


def test_an_incomplete_checklist_is_shown_again_on_the_referral_page(client, auth, hub, db_session):
    auth.login(hub["gp"])
    send_form(auth, hub)
    referral = db_session.scalar(select(Referral))
    auth.login(hub["coordinator"])
    auth.post(f"/referrals/{referral.id}/accept")
    answers = {"modality": "assisted_teleconsultation", "profession": "medecin_specialiste", "illectronism": "true"}
    refused = auth.post(f"/referrals/{referral.id}/eligibility", data=answers)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "1. Éligibilité au soin à distance" in page
    assert field_error(page, "clinical_situation_compatible") == "Répondez à cette question."
    assert 'id="f-illectronism-true" name="illectronism" value="true" checked' in page, "the answers stay"
    assert db_session.scalar(select(func.count()).where(AuditEvent.action == "eligibility.assess")) == 0


def test_a_telesoin_slot_has_no_accompanying_professional_to_choose(client, auth, hub, cpts, db_session):
    kine = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST)
    program = factories.program(db_session, cpts, performer=kine, telesoin=True, name="Télésoin kinésithérapie")
    slot = factories.slot(db_session, program, next_monday_14h())
    referral = factories.referral(
        db_session, hub["patient"], author=hub["gp"], state=ReferralState.ACCEPTED, target_program_id=program.id
    )
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    auth.login(hub["coordinator"])
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f'<option value="{slot.id}" selected>lundi ' in page
    assert "le professionnel de la séance est seul avec le patient" in page and 'name="accompanying_id"' not in page
    assert '<option value="domicile" selected>Domicile (organisé spécifiquement) (proposé)</option>' in page
