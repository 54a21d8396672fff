"""/api/v1/reports: the performer's draft, signature and correction; the deliveries in the representation; the
frozen PDF; nobody outside the patient's care reaches a report (S2), by URL id or by an id in the body."""

import datetime as dt
import json
from types import SimpleNamespace

import pytest
import time_machine
from defusedxml import ElementTree as SafeET
from sqlalchemy import event, func, select

from connectors import xdm
from hub.documents.cda import V3, check_cda
from hub.documents.clinical import DocumentPackage
from hub.documents.store import read_stored
from hub.models import (
    AppointmentState,
    AuditEvent,
    ConnectorSetting,
    Delivery,
    DeliveryState,
    OutboxMessage,
    Profession,
    Report,
    Role,
)
from hub.schemas.reports import DeliveryOut, ReportOut, report_out
from hub.services import accounts
from tests import ZONE, factories
from tests.api.test_write_paths import audited_update, label
from tests.factories import NOW
from tests.pdfs import pdf_text
from tests.queries import audit_inserts, count_queries, forbid_lazy_loads, statements_on
from workflows import reports

MONDAY_13H_UTC = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)
WRITTEN = {"acts": "Téléconsultation cardiologique, ECG lu à distance.", "conclusion": "Pas de décompensation."}


def session_of(db_session, t, starts_at: dt.datetime, *, patient=None):
    """An assisted teleconsultation of the patient (the territory's by default) with the cardiologist, carried
    out by the IDEL."""
    return factories.visit(db_session, t, starts_at, state=AppointmentState.DONE, patient_row=patient, now=NOW)


@pytest.fixture
def clinic(db_session, territory, uploads):
    """Monday's teleconsultation, done; the cardiologist and the patient's médecin traitant have accounts and
    secure mailboxes; a GP of the CPTS without care relation; another CPTS's coordinator and specialist."""
    t = territory
    t.cardiologist.mssante_address = "cardio@ch-perigueux.mssante.fr"
    cardiologist = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    gp_row = factories.professional(
        db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@cabinet.mssante.fr"
    )
    t.patient.attending_gp_id = gp_row.id
    gp = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=gp_row)
    outsider = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    elsewhere = factories.cpts(db_session)
    stranger = factories.user(db_session, elsewhere, Role.COORDINATOR)
    stranger_specialist = factories.clinician(db_session, elsewhere, Profession.SPECIALIST)
    db_session.flush()
    appointment = session_of(db_session, t, MONDAY_13H_UTC)
    db_session.commit()
    return SimpleNamespace(
        t=t,
        cardiologist=cardiologist,
        gp=gp,
        outsider=outsider,
        stranger=stranger,
        stranger_specialist=stranger_specialist,
        coordinator=t.coordinator,
        idel=t.idel_user,
        appointment=appointment,
        uploads=uploads,
    )


def signed_report(api_as, clinic, **fields) -> dict:
    api = api_as(clinic.cardiologist)
    report = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()
    assert api.patch(f"/api/v1/reports/{report['id']}", json=WRITTEN | fields).status_code == 200
    signed = api.post(f"/api/v1/reports/{report['id']}/sign")
    assert signed.status_code == 200, signed.get_json()
    return signed.get_json()


def test_draft_sign_and_deliveries(api_as, clinic, db_session, app):
    api = api_as(clinic.cardiologist)
    created = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/reports/{body['id']}")
    assert body["state"] == "draft" and body["state_label"] == "Brouillon" and body["version"] == 1
    assert body["participant_ids"] == [clinic.t.cardiologist.id, clinic.t.idel.id]
    again = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id})
    assert again.status_code == 200 and again.get_json()["id"] == body["id"], "the draft already begun"

    patched = api.patch(f"/api/v1/reports/{body['id']}", json=WRITTEN | {"follow_up_modality": "in_person"})
    assert patched.status_code == 200 and patched.get_json()["acts"] == WRITTEN["acts"]
    signed = api.post(f"/api/v1/reports/{body['id']}/sign")
    assert signed.status_code == 200, signed.get_json()
    report = signed.get_json()
    assert report["state"] == "signed" and report["document_uid"] and len(report["content_sha256"]) == 64
    assert report["document_pending"] and report["pdf_sha256"] is None and report["deliveries"] == []
    pending = api.get(f"/api/v1/reports/{body['id']}/pdf")
    assert pending.status_code == 409 and pending.mimetype == "application/problem+json"
    assert pending.headers["Retry-After"] == "5" and "en préparation" in pending.get_json()["detail"]
    assert factories.render_signed_reports(app).startswith("1 compte(s) rendu(s)"), "the worker's pass"
    report = api.get(f"/api/v1/reports/{body['id']}").get_json()
    assert report["pdf_sha256"] and not report["document_pending"] and report["state"] == "signed"
    by_role = {d["recipient_role"]: d for d in report["deliveries"]}
    gp = by_role["medecin_traitant"]
    assert gp["address"] == "gp@cabinet.mssante.fr" and gp["state_label"] == "Envoi en attente"
    assert gp["recipient_role_label"] == "Médecin traitant" and gp["due_at"]
    assert api.get(f"/api/v1/reports/{body['id']}").get_json()["deliveries"] == report["deliveries"]
    assert db_session.scalar(select(func.count(Delivery.id))) == len(report["deliveries"])

    pdf = api.get(f"/api/v1/reports/{body['id']}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Content-Disposition"].startswith("attachment") and pdf.headers["Cache-Control"] == "no-store"
    text = " ".join(pdf_text(pdf.data).split())
    assert "Compte rendu de téléconsultation, version 1" in text, "the document named in words"
    assert "LOINC" not in text and "85208-7" not in text and report["document_uid"] not in text, "no codes for people"
    assert db_session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "report.download")) == 1


def test_a_failed_rendering_is_told_by_the_api(api_as, clinic, app, tmp_path):
    """`document_failed`: still pending, its rendering failed (the coordination sees it late); retried."""
    report_id = signed_report(api_as, clinic)["id"]
    api = api_as(clinic.cardiologist)
    assert api.get(f"/api/v1/reports/{report_id}").get_json()["document_failed"] is False
    blocked = factories.unwritable_upload_dir(tmp_path)
    sessions = app.extensions["hub.sessions"]
    assert reports.render_pending(sessions, upload_dir=blocked, zone=ZONE).endswith("1 échec(s)")
    report = api.get(f"/api/v1/reports/{report_id}").get_json()
    assert report["document_pending"] and report["document_failed"] and report["deliveries"] == []
    pdf = api.get(f"/api/v1/reports/{report_id}/pdf")
    assert pdf.status_code == 409 and pdf.headers["Retry-After"] == "120"
    assert pdf.get_json()["detail"].startswith("La mise en forme du document a échoué, la coordination est prévenue")


def test_a_correction_says_it_waits_for_its_original_whose_rendering_fails(api_as, clinic, app, tmp_path):
    """A correction signed before its original was rendered is rendered after it (R7): the API names the version it
    waits for and, once that one's rendering fails, says so, not « en préparation … quelques secondes »."""
    original = signed_report(api_as, clinic)
    api = api_as(clinic.cardiologist)
    correction = api.post(f"/api/v1/reports/{original['id']}/supersede").get_json()
    assert api.post(f"/api/v1/reports/{correction['id']}/sign").status_code == 200
    waiting = api.get(f"/api/v1/reports/{correction['id']}").get_json()
    assert waiting["document_waits_for_version"] == 1 and waiting["document_waits_for_failed"] is False
    pdf = api.get(f"/api/v1/reports/{correction['id']}/pdf")
    assert pdf.status_code == 409 and pdf.headers["Retry-After"] == "5"
    assert pdf.get_json()["detail"] == (
        "Le document est en attente de la mise en forme de la version 1 : il sera téléchargeable ensuite."
    )
    assert api.get(f"/api/v1/reports/{original['id']}").get_json()["document_waits_for_version"] is None
    blocked = factories.unwritable_upload_dir(tmp_path)
    assert reports.render_pending(app.extensions["hub.sessions"], upload_dir=blocked, zone=ZONE).endswith("1 échec(s)")
    stuck = api.get(f"/api/v1/reports/{correction['id']}").get_json()
    assert stuck["document_pending"] and not stuck["document_failed"], "its own rendering has not been tried"
    assert stuck["document_waits_for_version"] == 1 and stuck["document_waits_for_failed"] is True
    pdf = api.get(f"/api/v1/reports/{correction['id']}/pdf")
    assert pdf.status_code == 409 and pdf.headers["Retry-After"] == "120"
    assert pdf.get_json()["detail"].startswith(
        "Le document est en attente de la mise en forme de la version 1, dont la mise en forme échoue"
    )


def test_a_signed_report_is_corrected_by_a_new_version(api_as, clinic):
    original = signed_report(api_as, clinic)
    api = api_as(clinic.cardiologist)
    assert api.patch(f"/api/v1/reports/{original['id']}", json={"conclusion": "Autre"}).status_code == 409
    correction = api.post(f"/api/v1/reports/{original['id']}/supersede")
    assert correction.status_code == 201
    draft = correction.get_json()
    assert draft["version"] == 2 and draft["supersedes_id"] == original["id"] and draft["state"] == "draft"
    assert draft["conclusion"] == WRITTEN["conclusion"], "the correction starts from the signed text"
    assert api.post(f"/api/v1/reports/{original['id']}/supersede").status_code == 422, "one correction at a time"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"follow_up_modality": "teleportation"}, "follow_up_modality"),
        ({"acts": "x" * 20_001}, "acts"),
        ({"state": "signed"}, "state"),
        ({"copy_participants": "peut-être"}, "copy_participants"),
    ],
)
def test_a_refused_update_saves_nothing(api_as, clinic, db_session, body, field):
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    refused = api.patch(f"/api/v1/reports/{report_id}", json={"conclusion": "Ne doit pas rester"} | body)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert field in refused.get_json()["errors"]
    db_session.expire_all()
    report = db_session.get(Report, report_id)
    assert report.conclusion == "" and report.state.value == "draft"


def test_signing_an_incomplete_report_is_refused_and_queues_nothing(api_as, clinic, db_session):
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    api.patch(f"/api/v1/reports/{report_id}", json={"acts": "ECG"})
    refused = api.post(f"/api/v1/reports/{report_id}/sign")
    assert refused.status_code == 422 and "conclusion" in refused.get_json()["errors"]
    assert db_session.scalar(select(func.count(Delivery.id))) == 0
    assert api.get(f"/api/v1/reports/{report_id}/pdf").status_code == 409, "no PDF before signing"


def test_readers_are_those_who_see_the_patient(api_as, clinic):
    report = signed_report(api_as, clinic)
    url = f"/api/v1/reports/{report['id']}"
    assert api_as(clinic.gp).get(url).status_code == 200, "the médecin traitant reads it"
    assert api_as(clinic.coordinator).get(url).status_code == 200
    assert api_as(clinic.idel).get(url).status_code == 200, "the accompanying IDEL is in the patient's care"
    assert api_as(clinic.gp).patch(url, json={"conclusion": "x"}).status_code == 404, "only the author writes"
    assert api_as(clinic.coordinator).post(f"{url}/supersede").status_code == 403


def test_a_draft_is_its_authors_until_signed(api_as, clinic):
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    assert api_as(clinic.gp).get(f"/api/v1/reports/{report_id}").status_code == 404
    assert api.get(f"/api/v1/reports/{report_id}").status_code == 200


@pytest.mark.parametrize("who", ["outsider", "stranger", "stranger_specialist"])
def test_no_report_outside_the_patients_care_s2(api_as, clinic, db_session, who):
    report = signed_report(api_as, clinic)
    api = api_as(getattr(clinic, who))
    url = f"/api/v1/reports/{report['id']}"
    denied_before = db_session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.outcome == "denied"))
    responses = [
        api.get(url),
        api.get(f"{url}/pdf"),
        api.patch(url, json={"conclusion": "x"}),
        api.post(f"{url}/sign"),
        api.post(f"{url}/supersede"),
        # The appointment's id swapped into the body of a new report.
        api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}),
    ]
    statuses = [r.status_code for r in responses]
    allowed_to_write = who != "stranger"
    assert statuses == [404, 404] + ([404] * 4 if allowed_to_write else [403] * 3 + [403])
    assert all(r.mimetype == "application/problem+json" for r in responses)
    denied = db_session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.outcome == "denied"))
    assert denied - denied_before == len(responses), "every refusal is audited"
    assert b"Pas de d\xc3\xa9compensation" not in b"".join(r.data for r in responses)


@pytest.mark.parametrize("appointment_id", [0, 2**31, 10**20, "douze", None])
def test_a_malformed_appointment_id_is_a_422(api_as, clinic, db_session, appointment_id):
    refused = api_as(clinic.cardiologist).post("/api/v1/reports", json={"appointment_id": appointment_id})
    assert refused.status_code == 422 and "appointment_id" in refused.get_json()["errors"]
    assert db_session.scalar(select(func.count(Report.id))) == 0


def test_the_accompanying_idel_cannot_write_the_report(api_as, clinic):
    refused = api_as(clinic.idel).post("/api/v1/reports", json={"appointment_id": clinic.appointment.id})
    assert refused.status_code == 422 and "réalisé l'acte" in refused.get_json()["detail"]


def test_the_openapi_document_lists_the_report_operations(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/reports/{report_id}"]) == {"get", "patch"}
    assert "200" in paths["/reports/{report_id}/sign"]["post"]["responses"]
    assert "201" in paths["/reports/{report_id}/supersede"]["post"]["responses"]
    assert "get" in paths["/reports/{report_id}/recipients"]


def test_the_recipients_and_their_deadlines_from_the_sessions_end(api_as, clinic, db_session, app):
    """Before the signature, where the report will go and by when; after it, the same deadlines with each
    sending's state. Deadlines count from the session's end plus the program's delays, never from the signing."""
    clinic.t.program.report_delay_doctors_hours = 24
    db_session.commit()
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    ended = clinic.appointment.ends_at

    planned = api.get(f"/api/v1/reports/{report_id}/recipients")
    assert planned.status_code == 200
    (gp,) = planned.get_json()["items"]  # a provisional identity: neither Mon espace santé nor the DMP
    assert (gp["recipient_role"], gp["recipient_role_label"]) == ("medecin_traitant", "Médecin traitant")
    assert (gp["address"], gp["channel"], gp["state"]) == ("gp@cabinet.mssante.fr", "mssante", "planned")
    assert gp["due_at"] == (ended + dt.timedelta(hours=24)).isoformat() and gp["delivery_id"] is None

    api.patch(f"/api/v1/reports/{report_id}", json=WRITTEN)
    assert api.post(f"/api/v1/reports/{report_id}/sign").status_code == 200
    (frozen,) = api.get(f"/api/v1/reports/{report_id}/recipients").get_json()["items"]
    assert frozen == gp, "while the document is rendered, the recipients the signature fixed"
    factories.render_signed_reports(app)
    (sent,) = api.get(f"/api/v1/reports/{report_id}/recipients").get_json()["items"]
    assert sent["due_at"] == gp["due_at"], "signed days later, still due from the session's end"
    assert (sent["state"], sent["state_label"]) == ("queued", "Envoi en attente") and sent["delivery_id"]
    assert api_as(clinic.gp).get(f"/api/v1/reports/{report_id}/recipients").status_code == 200
    assert api_as(clinic.outsider).get(f"/api/v1/reports/{report_id}/recipients").status_code == 404


def test_a_draft_recipients_list_is_its_authors(api_as, clinic):
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    assert api_as(clinic.gp).get(f"/api/v1/reports/{report_id}/recipients").status_code == 404


def test_signing_names_the_missing_fields(api_as, clinic):
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    refused = api.post(f"/api/v1/reports/{report_id}/sign").get_json()
    assert refused["errors"] == {
        "acts": "Actes réalisés : à remplir pour signer.",
        "conclusion": "Conclusion : à remplir pour signer.",
    }
    assert "« Actes réalisés » et « Conclusion »" in refused["detail"]


def test_ma_seance_through_the_api(api_as, clinic, db_session):
    """GET /me/session: without a day, the caller's session day; each patient with what the IDEL traced."""
    api = api_as(clinic.cardiologist)
    with time_machine.travel(NOW, tick=False):  # Monday 16 November: the next patients are on the 23rd
        body = api.get("/api/v1/me/session").get_json()
    assert body["day"] == "2026-11-23"
    (row,) = body["items"]
    assert (row["appointment_id"], row["patient_id"]) == (clinic.appointment.id, clinic.t.patient.id)
    assert row["identity_checked_by"] == clinic.idel.display_name and row["callback_phone"] == "0612345678"
    assert sorted(row["checklist"]) == ["camera", "light", "privacy", "sound"] and row["can_start_report"] is True
    assert row["report_id"] is None and row["referral_ids"] == []
    assert api.get("/api/v1/me/session?day=2026-11-24").get_json() == {"day": "2026-11-24", "items": []}
    assert api.get("/api/v1/me/session?day=24/11/2026").status_code == 422
    assert api_as(clinic.coordinator).get("/api/v1/me/session").status_code == 403
    audited = select(func.count(AuditEvent.id)).where(AuditEvent.action == "worklist.read")
    assert db_session.scalar(audited) == 2


def test_the_report_requests_leave_the_frozen_content_and_load_nothing_lazily(api_as, clinic, engine, app):
    """P7's report requests: the report read without the document frozen at signing (a deferred column the
    worker alone reads), no lazy load in the draft, PATCH and GET, and a fixed number of statements (audit line
    and savepoints aside)."""
    api = api_as(clinic.cardiologist)
    seen, sent = {}, {}
    with forbid_lazy_loads(), statements_on(engine) as seen["draft"], count_queries(engine) as sent["draft"]:
        report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    with forbid_lazy_loads(), statements_on(engine) as seen["patch"], count_queries(engine) as sent["patch"]:
        assert api.patch(f"/api/v1/reports/{report_id}", json=WRITTEN).status_code == 200
    with forbid_lazy_loads(), statements_on(engine) as seen["sign"], count_queries(engine) as sent["sign"]:
        assert api.post(f"/api/v1/reports/{report_id}/sign").status_code == 200
    # On PostgreSQL each write inserts its audit row with its own statement (hub.audit.take_queued): no audit
    # INSERT of its own, one round trip fewer; SQLite writes it at commit.
    alone = 0 if engine.dialect.name == "postgresql" else 1
    assert {name: audit_inserts(statements) for name, statements in sent.items()} == dict.fromkeys(sent, alone), sent
    if engine.dialect.name == "postgresql":
        assert "INSERT INTO audit_events" in next(s for s in seen["draft"] if "INSERT INTO reports" in s)
        assert [s for s in seen["patch"] + seen["sign"] if "UPDATE reports" in s and "audit_events" in s]
    factories.render_signed_reports(app)
    with forbid_lazy_loads(), statements_on(engine) as seen["get"]:
        assert api.get(f"/api/v1/reports/{report_id}").get_json()["deliveries"]
    reads = [s for name in ("draft", "patch", "get") for s in seen[name] if s.startswith("SELECT")]
    assert reads and not [s for s in reads if "frozen_content" in s], "the report read without its frozen content"
    counts = {name: len(statements) for name, statements in seen.items()}
    # Issue 17, P7: each verb reads its row once, under its lock (hub.row_locks), with what it reads next: the draft
    # was 8 (the appointment read twice, the begun report twice), the PATCH 4, the signature 13 (the report read
    # twice, the patient, the author, the médecin traitant and the program one at a time, the document's id written
    # in an UPDATE of its own), then 8 (the accompanying IDEL, the prescribers, the custodian and the CPTS's webhook
    # settings each in a SELECT of its own). The draft's row is one INSERT on PostgreSQL, its id drawn first to be its
    # own root (it was the unit of work's INSERT and an UPDATE of the root); SQLite writes the root after.
    draft = 5 if engine.dialect.name == "postgresql" else 6
    assert counts == {"draft": draft, "patch": 3, "sign": 4, "get": 2}, seen
    assert sum("INSERT INTO reports" in s for s in seen["draft"]) == 1, seen["draft"]
    assert "FROM reports" in seen["sign"][1] and "patients" in seen["sign"][1], seen["sign"]


def test_the_signature_reads_its_session_prescribers_custodian_and_webhook_with_one_select(
    api_as, clinic, db_session, engine
):
    """Issue 17, P7: beside its locked report, a signature reads the session, its program, the CPTS (the custodian),
    the referrals' authors (the prescribers), the accompanying IDEL (a participant) and the CPTS's webhook settings
    in one SELECT: the token, the report, that SELECT, the report's UPDATE (sent as it is written, hub.db.update_row)
    and the webhook's outbox row (audit and savepoints aside). It was 8 statements without a webhook, each of these
    read on its own."""
    t = clinic.t
    prescriber = factories.clinician(
        db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="prescriptrice@cabinet.mssante.fr"
    )
    factories.referral(db_session, t.patient, author=prescriber, appointment_id=clinic.appointment.id)
    hooks = {"WEBHOOK_URL": "https://si.cpts.example/hooks"}
    db_session.add(ConnectorSetting(cpts_id=t.cpts.id, channel="webhook", settings=json.dumps(hooks)))
    db_session.commit()
    api = api_as(clinic.cardiologist)
    report_id = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()["id"]
    assert api.patch(f"/api/v1/reports/{report_id}", json=WRITTEN | {"copy_participants": True}).status_code == 200
    with forbid_lazy_loads(), statements_on(engine) as seen:
        assert api.post(f"/api/v1/reports/{report_id}/sign").status_code == 200
    verbs = [" ".join(statement.split()[:3]) for statement in seen]
    assert len(seen) == 5 and verbs[0].startswith("SELECT api_tokens.id") and "FROM reports" in seen[1], seen
    session_read = seen[2]
    for table in (
        "appointments",
        "session_programs",
        "organisations",
        "referrals",
        "professionals",
        "connector_settings",
    ):
        assert f"FROM {table}" in session_read or f"JOIN {table}" in session_read, (table, session_read)
    assert audited_update(engine, "reports") == label(seen[3]) and seen[4].startswith("INSERT INTO outbox_messages"), (
        seen
    )
    frozen = json.loads(db_session.scalar(select(Report.frozen_content).where(Report.id == report_id)))
    addresses = {(target["role"], target["address"]) for target in frozen["recipients"]}
    assert ("prescripteur", "prescriptrice@cabinet.mssante.fr") in addresses, frozen["recipients"]
    assert ("medecin_traitant", "gp@cabinet.mssante.fr") in addresses, frozen["recipients"]
    document = DocumentPackage.from_payload(frozen).document
    assert [p.last_name for p in document.participants] == [t.idel.last_name], document
    assert (document.custodian.name, document.custodian.finess) == (t.cpts.name, t.cpts.finess)
    (event,) = db_session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
    assert (event.recipient, event.kind) == ("https://si.cpts.example/hooks", "report.signed")


def test_names_stored_with_characters_xml_forbids_give_a_well_formed_cda_and_xdm(api_as, clinic, db_session, app):
    """Names stored before the input policy refused these characters (a 422 now) or from outside the forms: the
    signed report's CDA and the XDM metadata sent with it drop them, and a strict parser reads both."""
    t = clinic.t
    t.cardiologist.last_name, t.cardiologist.first_name = "Martin\x0b", "Hélène\uffff"
    t.idel.last_name = "Roux\x1f"
    t.cpts.name = "CPTS\x01 du Grand Périgueux\ufffe"
    db_session.commit()
    signed = signed_report(api_as, clinic)
    assert factories.render_signed_reports(app).startswith("1 compte(s) rendu(s)")
    report = db_session.get(Report, signed["id"])
    db_session.refresh(report)
    cda = read_stored(clinic.uploads, report.cda_sha256)

    root = SafeET.fromstring(cda)  # well-formed, for a strict parser
    assert check_cda(cda) == []
    names = [element.text for element in root.iter(f"{{{V3}}}family")] + [
        element.text for element in root.iter(f"{{{V3}}}name") if element.text and element.text.strip()
    ]
    assert {"Martin", "Roux", "CPTS du Grand Périgueux"} <= set(names), names
    assert "Hélène" in [element.text for element in root.iter(f"{{{V3}}}given")]

    # The package the MSSanté message to the médecin traitant carries, its renderings as stored.
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "mssante").limit(1))
    package = DocumentPackage.from_payload(json.loads(message.payload))
    assert sorted(r.role for r in package.renderings) == ["cda", "pdf"]
    files = {r.filename: read_stored(clinic.uploads, r.sha256) for r in package.renderings}
    metadata = xdm.metadata_xml(package, files, submission_uid="1.2.250.1.999.1.9", now=NOW)
    SafeET.fromstring(metadata)
    assert "^Martin^Hélène^".encode() in metadata and "<rim:Value>CPTS du Grand Périgueux<".encode() in metadata


def _same_as_the_schema_s_dump(db_session, report_id: int) -> dict:
    """`report_out` of the stored report equals ReportOut's dump, its keys and its deliveries' in their order."""
    db_session.expire_all()
    report = db_session.get(Report, report_id)
    waits_for = reports.rendering_wait(db_session, report)
    expected = ReportOut(waits_for=waits_for).dump(report)
    answered = report_out(report, waits_for=waits_for)
    assert answered == expected and list(answered) == list(expected) == list(ReportOut().fields)
    for delivery, dumped in zip(answered["deliveries"], expected["deliveries"], strict=True):
        assert list(delivery) == list(dumped) == list(DeliveryOut().fields)
    return answered


def test_the_report_s_answer_is_report_out_s_dump_field_for_field(api_as, clinic, db_session, app, tmp_path):
    """`report_out` (the API's answers without marshmallow) gives ReportOut's dump for a draft with every field,
    a signed report being rendered, one whose rendering failed, a correction waiting for it, and rendered ones
    whose deliveries are sent and silent past the delay, or refused with a code."""
    api = api_as(clinic.cardiologist)
    draft = api.post("/api/v1/reports", json={"appointment_id": clinic.appointment.id}).get_json()
    every_field = {
        "prescriptions": "Furosémide 40 mg",
        "technical_incidents": "Son coupé 2 min",
        "follow_up": "Revoir dans un mois",
        "follow_up_modality": "in_person",
        "copy_participants": True,
    }
    assert api.patch(f"/api/v1/reports/{draft['id']}", json=WRITTEN | every_field).status_code == 200
    assert _same_as_the_schema_s_dump(db_session, draft["id"])["prescriptions"] == "Furosémide 40 mg"
    assert api.post(f"/api/v1/reports/{draft['id']}/sign").status_code == 200
    assert _same_as_the_schema_s_dump(db_session, draft["id"])["document_pending"] is True
    blocked = factories.unwritable_upload_dir(tmp_path)
    assert reports.render_pending(app.extensions["hub.sessions"], upload_dir=blocked, zone=ZONE).endswith("1 échec(s)")
    assert _same_as_the_schema_s_dump(db_session, draft["id"])["document_failed"] is True
    correction = api.post(f"/api/v1/reports/{draft['id']}/supersede").get_json()
    assert api.post(f"/api/v1/reports/{correction['id']}/sign").status_code == 200
    waiting = _same_as_the_schema_s_dump(db_session, correction["id"])
    assert waiting["document_waits_for_version"] == 1 and waiting["document_waits_for_failed"] is True

    db_session.get(Report, draft["id"]).render_lease_until = None  # the failed attempt's lease over: retried
    db_session.commit()
    assert factories.render_signed_reports(app).startswith("2 compte(s) rendu(s)")
    both = (draft["id"], correction["id"])
    deliveries = db_session.scalars(select(Delivery).where(Delivery.report_id.in_(both)).order_by(Delivery.id)).all()
    assert len(deliveries) == 2, "the médecin traitant's of each version"
    long_ago = NOW - dt.timedelta(days=30)
    deliveries[0].state, deliveries[0].sent_at = DeliveryState.SENT, long_ago
    refused = {"state": DeliveryState.REFUSED, "sent_at": long_ago, "acknowledged_at": NOW, "refusal_code": "903"}
    for name, value in (refused | {"refusal_text": "INS?"}).items():
        setattr(deliveries[1], name, value)
    db_session.commit()
    rendered = [_same_as_the_schema_s_dump(db_session, report_id) for report_id in both]
    answered = {d["id"]: d for report in rendered for d in report["deliveries"]}
    assert all(report["pdf_sha256"] for report in rendered) and answered[deliveries[0].id]["unacknowledged"] is True
    assert answered[deliveries[1].id]["state_label"] == "Refusé par le destinataire (903 : INS absent)"


def test_the_report_read_runs_outside_a_transaction_and_is_audited(app, committed):
    """GET report is a light read (hub.http.access.light_read): its SELECTs and its audit row's INSERT each run on
    their own, no BEGIN or COMMIT on PostgreSQL, no BEGIN IMMEDIATE holding SQLite's write lock; the read is
    audited once. Committed for real: the rolled-back outer transaction of `db_session` would hide the point."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        t = factories.territory(session, cpts)
        done = factories.visit(session, t, state=AppointmentState.DONE, now=NOW)
        specialist = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
        report_id = reports.start_report(session, specialist, done).id
        _token, raw = accounts.create_api_token(session, specialist, name="lecture")
        session.commit()
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    url = f"/api/v1/reports/{report_id}"
    client.get(url, headers=headers)  # the token's first use stamps last_used_at
    engine = app.extensions["hub.engine"]
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        dbapi = conn.connection.dbapi_connection
        outside = dbapi.autocommit if engine.dialect.name == "postgresql" else not dbapi.in_transaction
        seen.append((statement.split()[0], outside))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200 and response.get_json()["state"] == "draft"
    assert [verb for verb, _ in seen][-1] == "INSERT" and all(outside for _, outside in seen), seen
    with factory() as session:
        where = (AuditEvent.target_type == "reports", AuditEvent.target_id == str(report_id))
        actions = session.execute(select(AuditEvent.action, AuditEvent.outcome).where(*where)).all()
    assert [tuple(row) for row in actions].count(("report.read", "success")) == 2, "each read, once"
