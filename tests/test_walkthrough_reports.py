"""The walk-through of issue 5, against real servers on loopback.

The cardiologist signs the report of Monday's assisted teleconsultation in the browser; MSSanté messages
go to the médecin traitant and to the patient's Mon espace santé mailbox over SMTP (STARTTLS, the
structure's client certificate, IHE XDM zip), the DMP deposit is made over HTTPS (FHIR MHD, client
certificate); the MDNs come back into the applicative mailbox (Dovecot over IMAP) and the report shows
« Acquitté ». Then, with the SMTP server stopped (R14), the correction is still signed, the coordinator sees
« Envoi en attente », and everything goes out when the server is back.
"""

import datetime as dt
import html
import io
import zipfile

import pytest
from sqlalchemy import func, select, update

from connectors.dispatcher import dispatch_once
from connectors.mssante import mdn_token
from connectors.registry import build_registry
from hub.db import utcnow
from hub.models import (
    AppointmentState,
    AuditEvent,
    ConsentKind,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
    Profession,
    RecipientRole,
    Report,
    ReportState,
    Role,
)
from hub.services import accounts
from tests import factories
from tests.api.conftest import ApiClient
from tests.factories import NOW
from tests.http_servers import FhirRecipient, HttpsServer, client_certificate
from tests.imap_server import dovecot_available
from tests.servers import SmtpServer, free_port
from workflows import deliveries

SENDER = "hub-app@cpts-viveval.mssante.fr"
GP_MAILBOX = "jeanne.roux@medecin.mssante.fr"

pytestmark = pytest.mark.skipif(not dovecot_available(), reason="Dovecot (dovecot-imapd) is not installed")


@pytest.fixture
def servers(test_ca, imap_server, tmp_path, app):
    """The operator's submission server (client certificate required), the DMP, the applicative mailbox."""
    imap_server.clear()
    structure = client_certificate(test_ca, tmp_path)
    recipient = FhirRecipient()
    with app.app_context():  # left at once: requests must not share its `g` (the logged-in user)
        from hub.http.request import upload_dir

        uploads = upload_dir()
    with (
        SmtpServer(tls_context=test_ca.server_context(require_client_cert=True)) as smtp,
        HttpsServer(test_ca, client_ca=test_ca, responder=recipient) as dmp,
    ):
        settings = {
            "MSSANTE_HOST": smtp.host,
            "MSSANTE_PORT": smtp.port,
            "MSSANTE_SENDER": SENDER,
            "MSSANTE_CA_FILE": str(test_ca.ca_file),
            "MSSANTE_CERT_FILE": str(structure.cert_file),
            "MSSANTE_KEY_FILE": str(structure.key_file),
            "DMP_URL": dmp.url,
            "DMP_CA_FILE": str(test_ca.ca_file),
            "DMP_CERT_FILE": str(structure.cert_file),
            "DMP_KEY_FILE": str(structure.key_file),
            "DMP_TIMEOUT_SECONDS": 5,
            "UPLOAD_DIR": str(uploads),
            "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test servers listen on loopback
        } | imap_server.settings()
        yield smtp, dmp, recipient, imap_server, settings


@pytest.fixture
def monday(db_session, territory):
    """Monday's teleconsultation, carried out; a qualified patient who agreed to the DMP; a médecin
    traitant with a secure mailbox; the cardiologist's account."""
    t = territory
    patient = t.patient
    factories.qualify(db_session, patient)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address=GP_MAILBOX)
    patient.attending_gp_id = gp.id
    factories.consent(db_session, patient, recorded_by=t.coordinator, kind=ConsentKind.DMP_ACCESS, collected_at=NOW)
    t.cardiologist_user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    monday_14h = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)
    t.appointment = factories.visit(db_session, t, monday_14h, state=AppointmentState.DONE, now=NOW)
    db_session.commit()
    db_session.refresh(patient)
    return t


def sign_in_the_browser(auth, t, **fields) -> Report:
    auth.login(t.cardiologist_user)
    response = auth.post(f"/reports/start/{t.appointment.id}")
    assert response.status_code == 302, response.text
    report_id = int(response.headers["Location"].rstrip("/").split("/")[-2])
    form = {
        "acts": "Téléconsultation cardiologique assistée par l'IDEL ; ECG 12 dérivations lu à distance.",
        "prescriptions": "Furosémide 40 mg : 1 cp le matin.",
        "technical_incidents": "",
        "conclusion": "Insuffisance cardiaque stable, pas de décompensation.",
        "follow_up": "",
        "follow_up_modality": "",
        "action": "sign",
        "confirm": "true",
    } | fields
    response = auth.post(f"/reports/{report_id}/edit", data=form)
    assert response.status_code == 302, response.text
    factories.render_signed_reports(auth.client.application)  # the worker renders the documents, then queues them
    return auth.session.get(Report, report_id)


def drain(sessions, settings) -> None:
    registry = build_registry(settings)
    while dispatch_once(sessions, connectors=registry).claimed:
        pass


def mdn(token: str, recipient: str, *, error: str | None = None) -> bytes:
    disposition = "processed/error" if error else "processed"
    fields = [
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Message-ID: <{token}@cpts-viveval.mssante.fr>",
        f"Disposition: automatic-action/MDN-sent-automatically; {disposition}",
    ] + ([f"Error: {error}"] if error else [])
    return "\r\n".join(
        [
            f"From: {recipient}",
            f"To: {SENDER}",
            "Subject: Accuse de traitement",
            "Date: Mon, 23 Nov 2026 16:05:00 +0100",
            f"Message-ID: <mdn-{token[:8]}@receiver.mssante.fr>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"',
            "",
            "--b",
            "Content-Type: text/plain; charset=utf-8",
            "",
            "Message traite.",
            "--b",
            "Content-Type: message/disposition-notification",
            "",
            *fields,
            "",
            "--b--",
            "",
        ]
    ).encode()


def page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.text


def test_the_signed_report_reaches_its_recipients_and_comes_back_acknowledged(
    db_session, auth, client, sessions, monday, servers
):
    t = monday
    smtp, _dmp, recipient, mailbox, settings = servers
    report = sign_in_the_browser(auth, t)
    assert report.state is ReportState.SIGNED
    roles = {d.recipient_role: d for d in report.deliveries}
    assert set(roles) == {RecipientRole.PATIENT, RecipientRole.ATTENDING_GP, RecipientRole.DMP}
    # Due from the session's end (Monday 23 November) plus the program's delays, whenever it is signed.
    ended = t.appointment.ends_at
    assert ended.date() == dt.date(2026, 11, 23) and report.signed_at > ended + dt.timedelta(days=3)
    assert roles[RecipientRole.ATTENDING_GP].due_at == ended + dt.timedelta(hours=48)
    assert roles[RecipientRole.DMP].due_at == roles[RecipientRole.PATIENT].due_at == ended + dt.timedelta(hours=72)
    shown = page(client, f"/reports/{report.id}")
    assert "Envoi en attente" in shown and "mercredi 25 novembre 2026" in shown and "jeudi 26 novembre 2026" in shown

    drain(sessions, settings)
    deliveries.follow_deliveries(sessions)
    db_session.expire_all()

    received = {message.parsed["To"]: message for message in smtp.messages}
    patient_mailbox = f"{t.patient.ins_matricule}@patient.mssante.fr"
    assert set(received) == {GP_MAILBOX, patient_mailbox}, "one e-mail per mailbox"
    gp_message = received[GP_MAILBOX].parsed
    assert gp_message["Subject"] == "XDM/1.0/DDM+Compte rendu de téléconsultation"
    assert gp_message["Disposition-Notification-To"].strip("<>") == SENDER
    files = {part.get_filename(): part.get_content() for part in gp_message.iter_attachments()}
    with zipfile.ZipFile(io.BytesIO(files["IHE_XDM.zip"])) as xdm:
        names = set(xdm.namelist())
        assert {"INDEX.HTM", "README.TXT", "IHE_XDM/SUBSET01/METADATA.XML"} <= names
        cda = next(xdm.read(name) for name in names if name.endswith(".XML") and "METADATA" not in name)
    assert t.patient.ins_matricule.encode() in cda, "a qualified identity travels with its INS"
    assert recipient.documents(f"urn:oid:{report.document_uid}"), "the DMP holds the document"
    assert roles[RecipientRole.DMP].state is DeliveryState.ACKNOWLEDGED
    assert report.state is ReportState.SENT

    mailbox.deliver(*(mdn(d.message_id, d.address) for d in report.deliveries if d.channel == "mssante"))
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert {d.state for d in report.deliveries} == {DeliveryState.ACKNOWLEDGED}
    assert report.state is ReportState.ACKNOWLEDGED
    assert "Acquitté" in page(client, f"/reports/{report.id}")
    assert mailbox.unseen() == 0, "each MDN is read once"


def test_a_refusal_is_shown_with_the_receivers_code(db_session, auth, client, sessions, monday, servers):
    t = monday
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report = sign_in_the_browser(auth, t)
    drain(sessions, settings)
    patient_delivery = next(d for d in report.deliveries if d.recipient_role is RecipientRole.PATIENT)
    mailbox.deliver(mdn(patient_delivery.message_id, patient_delivery.address, error="903^INS absent"))
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (patient_delivery.state, patient_delivery.refusal_code) == (DeliveryState.REFUSED, "903")
    assert "903" in page(client, f"/reports/{report.id}")


def test_r14_with_the_smtp_server_down_the_report_is_signed_and_everything_drains_after(
    db_session, auth, sessions, monday, servers, test_ca
):
    t = monday
    _smtp, _dmp, _recipient, _mailbox, settings = servers
    down = free_port()  # nothing listens there: the operator's server is down
    settings = settings | {"MSSANTE_PORT": down}
    report = sign_in_the_browser(auth, t)
    assert report.state is ReportState.SIGNED, "signing does not wait for the network"

    for _ in range(3):  # the worker keeps trying while the server is down
        drain(sessions, settings)
        deliveries.follow_deliveries(sessions)
        db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db_session.commit()
    db_session.expire_all()
    waiting = db_session.scalars(
        select(OutboxMessage)
        .join(Delivery, Delivery.outbox_message_id == OutboxMessage.id)
        .where(Delivery.channel == "mssante")
        .order_by(OutboxMessage.id)
    ).all()
    assert len(waiting) == 2 and {m.state for m in waiting} == {OutboxState.PENDING}
    first, second = waiting
    assert first.attempts == 3 and first.last_error, "transient failures, retried"
    assert second.attempts == 0, "one message of the report in flight at a time: the next one waits (R7)"
    assert report.state is ReportState.SIGNED
    assert {d.state for d in report.deliveries if d.channel == "mssante"} == {DeliveryState.QUEUED}
    auth.login(t.coordinator)
    assert "Envoi en attente" in page(auth.client, "/envois")
    assert "Envoi en attente" in page(auth.client, f"/reports/{report.id}")

    with SmtpServer(tls_context=test_ca.server_context(require_client_cert=True), port=down) as back:
        drain(sessions, settings)
        deliveries.follow_deliveries(sessions)
        db_session.expire_all()
        assert {m.state for m in waiting} == {OutboxState.SENT}
        assert back.message_ids() == {mdn_id(m): 1 for m in waiting}, "each message once, with its stable id"
    assert report.state is ReportState.SENT


def mdn_id(message: OutboxMessage) -> str:
    return f"<{mdn_token(message.idempotency_key)}@cpts-viveval.mssante.fr>"


# --- The receivers' codes (ANS volet): three digits from an MDN or a plain e-mail; silence is no refusal.


def error_mail(subject: str, *, in_reply_to: str | None = None, references: str | None = None) -> bytes:
    """An error sent as a plain e-mail (not an MDN), the code in brackets in its subject."""
    threading = ([f"In-Reply-To: {in_reply_to}"] if in_reply_to else []) + (
        [f"References: {references}"] if references else []
    )
    return "\r\n".join(
        [
            f"From: {GP_MAILBOX}",
            f"To: {SENDER}",
            f"Subject: {subject}",
            "Date: Mon, 23 Nov 2026 16:10:00 +0100",
            "Message-ID: <err-1@medecin.mssante.fr>",
            *threading,
            "Content-Type: text/plain; charset=utf-8",
            "",
            "Le document n'a pas pu être intégré.",
            "",
        ]
    ).encode()


def read(client, url) -> str:
    return html.unescape(page(client, url))


def signed_and_sent(auth, sessions, t, settings) -> tuple[Report, Delivery]:
    report = sign_in_the_browser(auth, t)
    drain(sessions, settings)
    deliveries.follow_deliveries(sessions)
    gp = next(d for d in report.deliveries if d.recipient_role is RecipientRole.ATTENDING_GP)
    return report, gp


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("905^", "Refusé par le destinataire (905 : traits d'identité incomplets)"),
        ("906^", "Refusé par le destinataire (906 : autre erreur)"),
    ],
)
def test_an_mdn_with_905_or_906_refuses_with_its_label(
    db_session, auth, client, sessions, monday, servers, error, shown
):
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    mailbox.deliver(mdn(gp.message_id, gp.address, error=error))
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (gp.state, gp.refusal_code) == (DeliveryState.REFUSED, error[:3])
    assert shown in read(client, f"/reports/{report.id}")


def test_the_code_is_read_in_the_disposition_line_whatever_its_prefix(
    db_session, auth, client, sessions, monday, servers
):
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    raw = mdn(gp.message_id, gp.address).replace(b"; processed", b"; processed/Error: 904^")
    mailbox.deliver(raw)
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (gp.state, gp.refusal_code) == (DeliveryState.REFUSED, "904")
    assert "Refusé par le destinataire (904 : INS discordant)" in read(client, f"/reports/{report.id}")


def test_a_plain_mail_with_903_in_its_subject_refuses_the_delivery_it_answers(
    db_session, auth, client, sessions, monday, servers
):
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    others = [d for d in report.deliveries if d is not gp]
    original = f"<{gp.message_id}@cpts-viveval.mssante.fr>"
    mailbox.deliver(
        error_mail("[Erreur intégration][903]", in_reply_to=original),
        error_mail("Question sur le compte rendu", in_reply_to=original),  # for a person: left unread
    )
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (gp.state, gp.refusal_code) == (DeliveryState.REFUSED, "903")
    assert all(d.state is not DeliveryState.REFUSED for d in others)
    assert "Refusé par le destinataire (903 : INS absent)" in read(client, f"/reports/{report.id}")
    assert mailbox.unseen() == 1


def test_a_plain_mail_matched_by_its_references_or_its_subject(db_session, auth, client, sessions, monday, servers):
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    patient = next(d for d in report.deliveries if d.recipient_role is RecipientRole.PATIENT)
    mailbox.deliver(
        error_mail("[Erreur][902]", references=f"<x@y.fr> <{gp.message_id}@cpts-viveval.mssante.fr>"),
        error_mail(f"[<{patient.message_id}@cpts-viveval.mssante.fr>][906]"),
    )
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (gp.state, gp.refusal_code) == (DeliveryState.REFUSED, "902")
    assert (patient.state, patient.refusal_code) == (DeliveryState.REFUSED, "906")
    shown = read(client, f"/reports/{report.id}")
    assert "(902 : patient inconnu)" in shown and "(906 : autre erreur)" in shown


def test_900_is_a_replacement_request_not_a_refusal(db_session, auth, client, sessions, monday, servers):
    _smtp, _dmp, _recipient, mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    mailbox.deliver(mdn(gp.message_id, gp.address, error="900^"))
    deliveries.follow_deliveries(sessions, mdn_settings=settings)
    db_session.expire_all()
    assert (gp.state, gp.refusal_code) == (DeliveryState.ACKNOWLEDGED, "900")
    shown = read(client, f"/reports/{report.id}")
    assert "Demande du destinataire (900 : demande de remplacement)" in shown
    assert "Refusé" not in shown
    assert (
        db_session.scalar(
            select(AuditEvent.action)
            .where(
                AuditEvent.target_type == "deliveries",
                AuditEvent.target_id == str(gp.id),
                AuditEvent.id > audited_before,
            )
            .order_by(AuditEvent.id.desc())
        )
        == "delivery.request"
    )


def test_no_answer_after_the_delay_is_sans_accuse_never_refused(db_session, auth, client, sessions, monday, servers):
    _smtp, _dmp, _recipient, _mailbox, settings = servers
    report, gp = signed_and_sent(auth, sessions, monday, settings)
    assert gp.state is DeliveryState.SENT
    _row, token = accounts.create_api_token(db_session, monday.cardiologist_user, name="tests")
    db_session.commit()
    api = ApiClient(client, token)

    def shown() -> tuple[str, str, dict]:
        auth.login(monday.coordinator)
        outbox = read(client, "/envois")
        auth.login(monday.cardiologist_user)
        delivery = {d["id"]: d for d in api.get(f"/api/v1/reports/{report.id}").get_json()["deliveries"]}[gp.id]
        return read(client, f"/reports/{report.id}"), outbox, delivery

    db_session.execute(update(Delivery).where(Delivery.id == gp.id).values(sent_at=utcnow() - dt.timedelta(days=6)))
    db_session.commit()
    report_page, outbox, delivery = shown()
    assert "Sans accusé" not in report_page and "Sans accusé" not in outbox
    assert "En attente d'acquittement" in outbox
    assert (delivery["state_label"], delivery["unacknowledged"]) == ("Envoyé", False)

    db_session.execute(update(Delivery).where(Delivery.id == gp.id).values(sent_at=utcnow() - dt.timedelta(days=8)))
    db_session.commit()
    report_page, outbox, delivery = shown()
    assert "Sans accusé" in report_page and "Sans accusé" in outbox
    assert "Refusé" not in report_page and "Refusé" not in outbox
    assert (delivery["state"], delivery["state_label"], delivery["unacknowledged"]) == ("sent", "Sans accusé", True)
