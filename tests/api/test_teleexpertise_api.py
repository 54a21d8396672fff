import base64
import datetime as dt
from types import MappingProxyType

import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import (
    AuditEvent,
    FeeEntry,
    Profession,
    Role,
    TeleexpertiseAttachment,
    TeleexpertiseRequest,
)
from tests import factories

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


@pytest.fixture
def te(db_session, cpts, uploads):
    """An IDEL asking about a patient with a chronic wound (their médecin traitant has an account), two
    cardiologists (one named, both the cardiology pool), a GP with no relation to the patient, the
    coordination, and another CPTS's coordinator."""

    idel = factories.clinician(db_session, cpts, Profession.NURSE, email="idel@example.org")
    gp = factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    factories.in_care_team(db_session, patient, idel.professional)
    factories.consent(db_session, patient, recorded_by=idel, collected_at=utcnow() - dt.timedelta(days=2))
    world = {
        "idel": idel,
        "gp": gp,
        "patient": patient,
        "cardiologist": factories.clinician(db_session, cpts, Profession.SPECIALIST, email="cardio@example.org"),
        "other_cardiologist": factories.clinician(db_session, cpts, Profession.SPECIALIST),
        "other_gp": factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER),
        "coordinator": factories.coordinator(db_session, cpts),
        "stranger": factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR),
    }
    db_session.commit()
    return world


def ask(api, te, **data):
    body = {
        "patient_id": te["patient"].id,
        "expert_id": te["cardiologist"].professional_id,
        "question": "Œdèmes des membres inférieurs : adapter le diurétique ?",
        "context": "Insuffisance cardiaque, plaie de jambe",
    }
    return api.post("/api/v1/teleexpertise", json=body | data)


def last_audit(db_session, user):
    return db_session.scalar(
        select(AuditEvent).where(AuditEvent.actor_user_id == user.id).order_by(AuditEvent.id.desc()).limit(1)
    )


def test_walk_through_ask_answer_and_close(api_as, te, db_session, uploads):
    idel = api_as(te["idel"])
    sent = ask(idel, te, attachments=[{"filename": "plaie jambe.png", "content": b64(PNG)}])
    assert sent.status_code == 201, sent.json
    request_id = sent.json["id"]
    assert sent.headers["Location"].endswith(f"/api/v1/teleexpertise/{request_id}")
    assert sent.json["state"] == "submitted" and sent.json["attachments"][0]["filename"] == "plaie_jambe.png"
    assert sent.json["answer"] is None

    expert = api_as(te["cardiologist"])
    assert [r["id"] for r in expert.get("/api/v1/teleexpertise").json["items"]] == [request_id]
    draft = expert.post(f"/api/v1/teleexpertise/{request_id}/answer", json={"conclusion": "Majorer le furosémide"})
    assert draft.status_code == 200, draft.json
    assert draft.json["state"] == "in_progress" and draft.json["answer"]["state"] == "draft"
    assert idel.get(f"/api/v1/teleexpertise/{request_id}").json["answer"] is None, "a draft is its author's alone"
    signed = expert.post(
        f"/api/v1/teleexpertise/{request_id}/answer",
        json={"conclusion": "Majorer le furosémide à 80 mg", "recommendations": "Bilan rénal à J7", "sign": True},
    )
    assert signed.status_code == 200, signed.json
    assert signed.json["state"] == "answered"

    mine = idel.get(f"/api/v1/teleexpertise/{request_id}").json
    assert mine["answer"]["conclusion"] == "Majorer le furosémide à 80 mg"
    assert mine["answer"]["recommendations"] == "Bilan rénal à J7"
    attending = api_as(te["gp"]).get(f"/api/v1/teleexpertise/{request_id}")
    assert attending.status_code == 200 and attending.json["answer"]["state"] in ("signed", "sent")
    assert db_session.scalar(select(func.count(FeeEntry.id)).where(FeeEntry.source_key.like("teleexpertise:%"))) == 2
    closed = idel.post(f"/api/v1/teleexpertise/{request_id}/close")
    assert closed.status_code == 200 and closed.json["state"] == "closed"
    assert idel.post(f"/api/v1/teleexpertise/{request_id}/close").status_code == 409


def test_s2_no_one_else_sees_the_request_and_each_denial_is_audited(api_as, te, db_session):
    request_id = ask(api_as(te["idel"]), te).json["id"]
    for intruder in ("other_gp", "other_cardiologist", "stranger"):
        api = api_as(te[intruder])
        assert api.get(f"/api/v1/teleexpertise/{request_id}").status_code == 404
        denial = last_audit(db_session, te[intruder])
        assert (denial.action, denial.outcome, denial.target_id) == ("teleexpertise.read", "denied", str(request_id))
        assert api.get("/api/v1/teleexpertise").json["total"] == 0
    for verb, body in (("assign", {}), ("decline", {"reason": "x"}), ("answer", {"conclusion": "x"})):
        assert api_as(te["other_gp"]).post(f"/api/v1/teleexpertise/{request_id}/{verb}", json=body).status_code == 404
    assert api_as(te["cardiologist"]).post(f"/api/v1/teleexpertise/{request_id}/close").status_code == 404
    assert (
        api_as(te["idel"]).post(f"/api/v1/teleexpertise/{request_id}/answer", json={"conclusion": "x"}).status_code
        == 404
    )


def test_s2_ids_swapped_in_the_body_are_refused(api_as, te, db_session, cpts):
    # A patient one does not care for, named in the body: 404 as for the URL, audited, nothing saved.
    refused = ask(api_as(te["other_gp"]), te)
    assert refused.status_code == 404
    denial = last_audit(db_session, te["other_gp"])
    assert (denial.action, denial.outcome, denial.target_id) == (
        "teleexpertise.create",
        "denied",
        str(te["patient"].id),
    )
    pool_id = ask(api_as(te["idel"]), te, expert_id=None, specialty="Cardiologie").json["id"]
    # An expert cannot hand the request to someone else; a coordinator cannot give it to another CPTS's doctor.
    expert = api_as(te["cardiologist"])
    other = te["other_cardiologist"].professional_id
    assert expert.post(f"/api/v1/teleexpertise/{pool_id}/assign", json={"expert_id": other}).status_code == 422
    elsewhere = factories.professional(db_session, factories.cpts(db_session), Profession.SPECIALIST)
    db_session.commit()
    coordination = api_as(te["coordinator"])
    wrong = coordination.post(f"/api/v1/teleexpertise/{pool_id}/assign", json={"expert_id": elsewhere.id})
    assert wrong.status_code == 422 and "expert_id" in wrong.json["errors"]
    assert db_session.get(TeleexpertiseRequest, pool_id).expert_id is None
    given = coordination.post(f"/api/v1/teleexpertise/{pool_id}/assign", json={"expert_id": other})
    assert given.status_code == 200 and given.json["expert_id"] == other


def test_a_pool_request_is_seen_by_the_pool_until_one_takes_it(api_as, te):
    request_id = ask(api_as(te["idel"]), te, expert_id=None, specialty="cardiologie").json["id"]
    first, second = api_as(te["cardiologist"]), api_as(te["other_cardiologist"])
    assert second.get(f"/api/v1/teleexpertise/{request_id}").status_code == 200
    taken = first.post(f"/api/v1/teleexpertise/{request_id}/assign")
    assert taken.status_code == 200 and taken.json["state"] == "assigned"
    assert second.get(f"/api/v1/teleexpertise/{request_id}").status_code == 404
    assert second.post(f"/api/v1/teleexpertise/{request_id}/assign").status_code == 404
    assert first.post(f"/api/v1/teleexpertise/{request_id}/start").json["state"] == "in_progress"
    handed_back = first.post(f"/api/v1/teleexpertise/{request_id}/decline", json={"reason": "Absent cette semaine"})
    assert handed_back.status_code == 200 and handed_back.json["state"] == "submitted"
    assert second.get(f"/api/v1/teleexpertise/{request_id}").status_code == 200


def test_i2_i3_uploads_are_checked_by_content_and_size_and_nothing_is_saved(api_as, te, app, db_session, monkeypatch):
    idel = api_as(te["idel"])
    fake = ask(idel, te, attachments=[{"filename": "photo.png", "content": b64(b"<html>pas une image</html>")}])
    assert fake.status_code == 422
    assert fake.json["errors"]["attachments.0"] == "Format non accepté : seuls les PDF, PNG et JPEG sont acceptés."
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "UPLOAD_MAX_BYTES": 1024}))
    big = ask(idel, te, attachments=[{"filename": "ecg.pdf", "content": b64(PDF + b"0" * 1024)}])
    assert big.status_code == 422 and "taille maximale" in big.json["errors"]["attachments.0"]
    garbled = ask(idel, te, attachments=[{"filename": "ecg.pdf", "content": "@@@"}])
    assert garbled.status_code == 422 and garbled.json["errors"]["attachments.0.content"] == "Contenu base64 invalide."
    late = ask(idel, te, deadline_at="2020-01-01T12:00:00+01:00")
    assert late.status_code == 422 and "dans le futur" in late.json["errors"]["deadline_at"]
    naive = ask(idel, te, deadline_at="2030-01-01T12:00:00")
    assert naive.status_code == 422 and "fuseau" in naive.json["errors"]["deadline_at"]
    unknown = ask(idel, te, state="answered")
    assert unknown.status_code == 422 and "state" in unknown.json["errors"]
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in (fake, big, garbled, late, unknown))
    assert db_session.scalar(select(func.count(TeleexpertiseRequest.id))) == 0
    assert db_session.scalar(select(func.count(TeleexpertiseAttachment.id))) == 0


def test_i3_an_attachment_is_served_to_those_allowed_only(api_as, te, db_session, uploads):
    idel = api_as(te["idel"])
    sent = ask(idel, te, attachments=[{"filename": "../../ecg.pdf", "content": b64(PDF)}]).json
    other = ask(idel, te).json
    file = sent["attachments"][0]
    assert file["filename"] == "ecg.pdf"
    path = next(uploads.rglob(file["sha256"]))
    assert path.read_bytes() == PDF and "static" not in path.parts
    url = f"/api/v1/teleexpertise/{sent['id']}/attachments/{file['id']}"
    served = api_as(te["cardiologist"]).get(url)
    assert served.status_code == 200 and served.data == PDF
    assert served.headers["Content-Disposition"] == 'attachment; filename="ecg.pdf"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    read = last_audit(db_session, te["cardiologist"])
    assert read.action == "teleexpertise.attachment_read"
    assert api_as(te["other_gp"]).get(url).status_code == 404
    swapped = f"/api/v1/teleexpertise/{other['id']}/attachments/{file['id']}"  # another request's id in the URL
    assert idel.get(swapped).status_code == 404


def test_the_fifth_of_the_year_needs_an_acknowledgement(api_as, te):
    idel = api_as(te["idel"])
    for _ in range(4):
        assert ask(idel, te).status_code == 201
    refused = ask(idel, te)
    assert refused.status_code == 422 and refused.json["type"] == "/problems/over-yearly-cap"
    assert "5e téléexpertise de l'année pour ce patient" in refused.json["detail"]
    accepted = ask(idel, te, acknowledge_over_cap=True)
    assert accepted.status_code == 201 and accepted.json["over_cap_acknowledged"] is True


def test_the_openapi_document_lists_the_teleexpertise_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"post", "get"} <= set(paths["/teleexpertise"])
    assert "application/json" in paths["/teleexpertise/{teleexpertise_id}/answer"]["post"]["requestBody"]["content"]
    assert "200" in paths["/teleexpertise/{teleexpertise_id}/assign"]["post"]["responses"]
