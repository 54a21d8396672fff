import io
from contextlib import contextmanager

from sqlalchemy import event, func, select

from hub.formatting import file_size
from hub.models import AuditEvent, TeleexpertiseRequest, TeleexpertiseState
from tests import ZONE, factories
from tests.api import test_teleexpertise_api as api_tests
from tests.api.test_teleexpertise_api import PNG
from workflows import teleexpertise

# The API tests' world, shared: the IDEL, their patient with a consent, two cardiologists, the médecin traitant.
te = api_tests.te
S = TeleexpertiseState


def send_form(auth, te, **overrides):
    data = {
        "patient_id": str(te["patient"].id),
        "expert_id": str(te["cardiologist"].professional_id),
        "question": "Plaie de jambe qui ne cicatrise pas : avis ?",
        "context": "Ulcère veineux depuis 2 mois",
        "urgency": "soon",
        "file1": (io.BytesIO(PNG), "plaie.png", "image/png"),
    }
    return auth.post("/teleexpertise/new", data=data | overrides, content_type="multipart/form-data")


def make_request(db_session, te, uploads, **data):
    values = {"patient_id": te["patient"].id, "expert_id": te["cardiologist"].professional_id, "question": "Avis ?"}
    row = teleexpertise.create(db_session, te["idel"], values | data, upload_dir=uploads, zone=ZONE)
    db_session.commit()
    return row


def test_walk_through_ask_answer_and_close_in_the_browser(client, auth, te, db_session):
    auth.login(te["idel"])
    form = client.get("/teleexpertise/new").get_data(as_text=True)
    assert "Demande de téléexpertise" in form and "consentement télémédecine recueilli" in form
    sent = send_form(auth, te)
    assert sent.status_code == 302, sent.get_data(as_text=True)
    row = db_session.scalar(select(TeleexpertiseRequest))
    assert row.state is S.SUBMITTED and [a.filename for a in row.attachments] == ["plaie.png"]
    page = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Plaie de jambe qui ne cicatrise pas" in page and "plaie.png" in page
    assert f"plaie.png</a> ({file_size(len(PNG))})" in page, "the size in Ko with a comma, never « 0.1 Ko »"
    frozen = client.get(f"/teleexpertise/{row.id}/document.pdf")
    assert (
        frozen.status_code == 200 and frozen.data.startswith(b"%PDF") and frozen.headers["Cache-Control"] == "no-store"
    )
    mine = client.get("/teleexpertise/mine").get_data(as_text=True)
    assert "Mes demandes de téléexpertise" in mine and "Envoyée" in mine

    auth.login(te["cardiologist"])
    inbox = client.get("/teleexpertise/inbox").get_data(as_text=True)
    assert "Téléexpertises reçues" in inbox and te["patient"].display_name in inbox and "Répondre" in inbox
    download = client.get(f"/teleexpertise/{row.id}/attachments/{row.attachments[0].id}")
    assert download.status_code == 200 and download.data == PNG
    assert last_action(db_session, te["cardiologist"]) == "teleexpertise.attachment_read"
    opened = auth.post(f"/teleexpertise/{row.id}/respond")
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/teleexpertise/{row.id}/answer")
    assert "Signer et envoyer" in client.get(opened.headers["Location"]).get_data(as_text=True)
    empty = auth.post(f"/teleexpertise/{row.id}/answer", data={"conclusion": "", "action": "sign"})
    assert empty.status_code == 422 and "Rédigez votre conclusion" in empty.get_data(as_text=True)
    saved = auth.post(f"/teleexpertise/{row.id}/answer", data={"conclusion": "Compression", "action": "save"})
    assert saved.status_code == 302
    signed = auth.post(
        f"/teleexpertise/{row.id}/answer",
        data={"conclusion": "Compression veineuse", "recommendations": "Revoir à 15 jours", "action": "sign"},
    )
    assert signed.status_code == 302, signed.get_data(as_text=True)
    db_session.refresh(row)
    assert row.state is S.ANSWERED

    auth.login(te["idel"])
    page = client.get(f"/teleexpertise/{row.id}").get_data(as_text=True)
    assert "Compression veineuse" in page and "Revoir à 15 jours" in page and "Clôturer la demande" in page
    assert auth.post(f"/teleexpertise/{row.id}/close").status_code == 302
    assert "Clôturée" in client.get("/teleexpertise/mine").get_data(as_text=True)


def last_action(db_session, user) -> str:
    return db_session.scalar(
        select(AuditEvent.action).where(AuditEvent.actor_user_id == user.id).order_by(AuditEvent.id.desc()).limit(1)
    )


def test_the_fifth_request_of_the_year_asks_for_a_confirmation(client, auth, te, db_session, uploads):
    for _ in range(4):
        make_request(db_session, te, uploads)
    auth.login(te["idel"])
    refused = send_form(auth, te)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "5e téléexpertise de l&#39;année pour ce patient" in text and "ne sera pas rémunérée" in text
    assert 'name="acknowledge_over_cap"' in text
    assert db_session.scalar(select(func.count(TeleexpertiseRequest.id))) == 4
    accepted = send_form(auth, te, acknowledge_over_cap="true")
    assert accepted.status_code == 302
    assert db_session.scalar(
        select(TeleexpertiseRequest).order_by(TeleexpertiseRequest.id.desc())
    ).over_cap_acknowledged


def test_refused_forms_say_why_in_french_and_save_nothing(client, auth, te, db_session, cpts):
    no_consent = factories.patient(db_session, cpts)
    factories.in_care_team(db_session, no_consent, te["idel"].professional)
    db_session.commit()
    auth.login(te["idel"])
    page = send_form(auth, te, patient_id=str(no_consent.id)).get_data(as_text=True)
    assert "pas de consentement valide à la télémédecine" in page
    fake = send_form(auth, te, file1=(io.BytesIO(b"MZ\x90 pas une image"), "plaie.png", "image/png"))
    assert fake.status_code == 422
    assert "Format non accepté" in fake.get_data(as_text=True) and 'id="e-file1"' in fake.get_data(as_text=True)
    no_question = send_form(auth, te, question="")
    assert no_question.status_code == 422 and 'id="e-question"' in no_question.get_data(as_text=True)
    assert db_session.scalar(select(func.count(TeleexpertiseRequest.id))) == 0


def test_the_pool_takes_or_declines_and_others_do_not_see(client, auth, te, db_session, uploads):
    row = make_request(db_session, te, uploads, expert_id=None, specialty="Cardiologie")
    auth.login(te["other_cardiologist"])
    inbox = client.get("/teleexpertise/inbox").get_data(as_text=True)
    assert "à votre pool Cardiologie" in inbox and "Prendre" in inbox
    no_reason = auth.post(f"/teleexpertise/{row.id}/decline", data={"reason": ""})
    assert no_reason.status_code == 422 and "Ce champ est obligatoire." in no_reason.get_data(as_text=True)
    assert auth.post(f"/teleexpertise/{row.id}/take").status_code == 302
    db_session.refresh(row)
    assert row.expert_id == te["other_cardiologist"].professional_id
    auth.login(te["cardiologist"])
    assert te["patient"].display_name not in client.get("/teleexpertise/inbox").get_data(as_text=True)
    late = auth.post(f"/teleexpertise/{row.id}/take")
    assert late.status_code == 404  # taken: the pool no longer sees it
    auth.login(te["other_gp"])
    assert client.get(f"/teleexpertise/{row.id}").status_code == 404


@contextmanager
def counting(engine):
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_lists_keep_a_constant_query_count(client, auth, te, db_session, uploads, engine, cpts):
    """P6: the inbox and the requester's list cost the same queries for 2 requests as for 8."""

    def queries(url):
        with counting(engine) as statements:
            assert client.get(url).status_code == 200
        return len(statements)

    counts = {}
    for size in (2, 8):
        while db_session.scalar(select(func.count(TeleexpertiseRequest.id))) < size:
            patient = factories.consenting_patient(db_session, cpts, recorded_by=te["idel"])
            factories.in_care_team(db_session, patient, te["idel"].professional)
            make_request(db_session, te, uploads, patient_id=patient.id)
            make_request(db_session, te, uploads, patient_id=patient.id, expert_id=None, specialty="Cardiologie")
        auth.login(te["idel"])
        mine = queries("/teleexpertise/mine")
        auth.login(te["cardiologist"])
        counts[size] = (mine, queries("/teleexpertise/inbox"))
    assert counts[2] == counts[8]


def test_the_coordination_lists_the_cptss_requests_and_assigns_one(client, auth, te, db_session, uploads):
    row = make_request(db_session, te, uploads, expert_id=None, specialty="Cardiologie")
    auth.login(te["coordinator"])
    listing = client.get("/teleexpertise/cpts").get_data(as_text=True)
    assert "Téléexpertises de la CPTS" in listing and te["idel"].professional.full_name in listing
    page = client.get(f"/teleexpertise/{row.id}").get_data(as_text=True)
    assert "Attribuer à" in page and "Répondre" not in page
    cardiologist = te["cardiologist"].professional_id
    assert (
        auth.post(f"/teleexpertise/{row.id}/assign", data={"expert_id": str(te["gp"].professional_id)}).status_code
        == 422
    )
    assert auth.post(f"/teleexpertise/{row.id}/assign", data={"expert_id": str(cardiologist)}).status_code == 302
    db_session.refresh(row)
    assert (row.state, row.expert_id) == (S.ASSIGNED, cardiologist)
