"""The DMP connector against a real HTTPS server on loopback that requires the structure's client certificate
(S16): the MHD ITI-65 bundle in the PDSm shape, built from the stored CDA; no deposit without a qualified INS;
receiver answers sorted into transient and permanent errors; a re-sent deposit has one effect (R2); and the
whole path through the dispatcher with a committed outbox row."""

import base64
import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from connectors import outbox
from connectors.base import OutgoingMessage, PermanentError, TransientError
from connectors.dispatcher import dispatch_once
from connectors.dmp import DmpConnector, provide_document_bundle
from connectors.registry import build_registry
from hub.documents.cda import build_cda
from hub.documents.clinical import (
    ClinicalDocument,
    Custodian,
    DocumentPackage,
    PatientIdentity,
    ProfessionalIdentity,
    Section,
    StoredRendering,
)
from hub.documents.pdf import render_pdf
from hub.documents.store import store_blob, stored_path
from hub.models import OutboxState
from tests import ZONE
from tests.connectors.test_dispatcher import reload
from tests.http_servers import Answer, FhirRecipient, HttpsServer, client_certificate, operation_outcome
from tests.servers import TestCA

INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.8"
RPPS = "10003407640"
UID = "2.25.329800735698586629295641978511506172918"
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
STARTED = dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def structure_ca(tmp_path_factory):
    """The authority that issued the hub structure's certificate, which the DMP server trusts."""
    return TestCA(tmp_path_factory.mktemp("structure-ca"))


@pytest.fixture(scope="module")
def structure_cert(structure_ca, tmp_path_factory):
    return client_certificate(structure_ca, tmp_path_factory.mktemp("structure-cert"))


@pytest.fixture
def recipient():
    return FhirRecipient()


@pytest.fixture
def dmp_server(test_ca, structure_ca, recipient):
    with HttpsServer(test_ca, client_ca=structure_ca, responder=recipient) as server:
        yield server


@pytest.fixture
def upload_dir(tmp_path):
    return tmp_path / "uploads"


@pytest.fixture
def dmp_config(dmp_server, test_ca, structure_cert, upload_dir):
    return {
        "DMP_URL": dmp_server.url,
        "DMP_CA_FILE": str(test_ca.ca_file),
        "DMP_CERT_FILE": str(structure_cert.cert_file),
        "DMP_KEY_FILE": str(structure_cert.key_file),
        "DMP_TIMEOUT_SECONDS": 5,
        "UPLOAD_DIR": str(upload_dir),
        "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test servers listen on loopback
    }


@pytest.fixture
def connector(dmp_config):
    connector = DmpConnector.from_config(dmp_config)
    yield connector
    connector.close()


def clinical_document(**changes) -> ClinicalDocument:
    patient = PatientIdentity(
        birth_name="DURAND",
        first_birth_given_name="Jeanne",
        birth_given_names="Jeanne Marie",
        birth_date=dt.date(1951, 3, 12),
        sex="F",
        birth_place_insee="24322",
        local_id="1.2.250.1.999.1.1.1.41",
        ins=INS,
        ins_oid=INS_OID,
        identity_status="QUAL",
    )
    author = ProfessionalIdentity(rpps=RPPS, last_name="MARTIN", first_name="Paul", profession="Médecin")
    document = ClinicalDocument(
        document_uid=UID,
        loinc="85208-7",
        title="Compte rendu de téléconsultation",
        created_at=dt.datetime(2026, 12, 7, 14, 30, tzinfo=dt.UTC),
        patient=patient,
        author=author,
        custodian=Custodian(name="CPTS du Val", finess="240000000", local_id="1.2.250.1.999.1.1.1"),
        service_started_at=STARTED,
        service_ended_at=STARTED + dt.timedelta(minutes=20),
        sections=(Section("Conclusion", "Insuffisance cardiaque stable."),),
    )
    return dataclasses.replace(document, **changes)


def freeze(upload_dir, document: ClinicalDocument) -> tuple[DocumentPackage, bytes]:
    pdf = render_pdf(document, zone=ZONE)
    cda = build_cda(document, pdf, zone=ZONE)
    renderings = (
        StoredRendering("cda", "text/xml", store_blob(upload_dir, cda), len(cda), "DOC0001.XML"),
        StoredRendering("pdf", "application/pdf", store_blob(upload_dir, pdf), len(pdf), "DOC0001.PDF"),
    )
    return DocumentPackage(document, renderings), cda


def outgoing(package: DocumentPackage, key: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        id=1,
        idempotency_key=key or f"doc:{package.document.document_uid}:dmp:dmp",
        channel="dmp",
        recipient="dmp",
        kind=f"document:{package.document.loinc}",
        payload=json.dumps(package.to_payload() | {"recipient_role": "patient"}),
    )


def entries_by_type(bundle: dict) -> dict[str, dict]:
    return {entry["resource"]["resourceType"]: entry for entry in bundle["entry"]}


# --- the bundle -----------------------------------------------------------------------------------------


def test_a_deposit_is_one_iti65_transaction_in_the_pdsm_shape(connector, dmp_server, recipient, upload_dir):
    package, cda = freeze(upload_dir, clinical_document())

    receipt = connector.send(outgoing(package))

    [request] = dmp_server.requests
    assert (request.method, request.path) == ("POST", "/")
    assert request.headers["content-type"] == "application/fhir+json"
    bundle = request.json
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    assert (
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-provide-document-bundle"
        in (bundle["meta"]["profile"])
    )
    entries = entries_by_type(bundle)
    assert sorted(entries) == ["Binary", "DocumentReference", "List", "Patient", "Practitioner"]
    assert all(entry["request"]["method"] == "POST" for entry in bundle["entry"])
    full_url = {kind: entry["fullUrl"] for kind, entry in entries.items()}

    submission_set = entries["List"]["resource"]
    assert any(p.endswith("/pdsm-comprehensive-submissionset") for p in submission_set["meta"]["profile"])
    assert any(p.endswith("/IHE.MHD.Comprehensive.SubmissionSet") for p in submission_set["meta"]["profile"])
    assert submission_set["code"]["coding"][0]["code"] == "submissionset"
    [unique_id] = [i for i in submission_set["identifier"] if i["use"] == "official"]
    assert unique_id["value"].startswith("urn:oid:2.25.")
    assert submission_set["subject"] == {"reference": full_url["Patient"]}
    assert submission_set["source"] == {"reference": full_url["Practitioner"]}
    assert submission_set["date"] == "2026-12-07T14:30:00Z"
    assert submission_set["entry"] == [{"item": {"reference": full_url["DocumentReference"]}}]

    doc = entries["DocumentReference"]["resource"]
    assert any(p.endswith("/pdsm-comprehensive-document-reference") for p in doc["meta"]["profile"])
    assert doc["masterIdentifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{UID}"}
    assert doc["status"] == "current"
    assert doc["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "85208-7",
        "display": "Compte rendu de téléconsultation",
    }
    assert doc["category"][0]["coding"][0]["code"] == "10"
    assert doc["subject"] == {"reference": full_url["Patient"]}
    assert doc["author"] == [{"reference": full_url["Practitioner"]}]
    assert doc["securityLabel"][0]["coding"][0]["code"] == "N"
    assert doc["context"]["period"] == {"start": "2026-12-07T13:00:00Z", "end": "2026-12-07T13:20:00Z"}
    assert "relatesTo" not in doc
    attachment = doc["content"][0]["attachment"]
    assert (attachment["contentType"], attachment["language"]) == ("text/xml", "fr-FR")
    assert attachment["url"] == full_url["Binary"]
    assert attachment["size"] == len(cda)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(cda).digest()).decode()  # noqa: S324
    assert entries["DocumentReference"]["request"]["ifNoneExist"] == f"identifier=urn:oid:{UID}"

    binary = entries["Binary"]["resource"]
    assert binary["contentType"] == "text/xml"
    assert base64.b64decode(binary["data"]) == cda
    assert b"Insuffisance cardiaque" not in request.body  # the CDA travels base64-encoded, inside the Binary

    patient = entries["Patient"]["resource"]
    assert patient["identifier"][0]["system"] == f"urn:oid:{INS_OID}"
    assert patient["identifier"][0]["value"] == INS
    assert (patient["birthDate"], patient["gender"]) == ("1951-03-12", "female")
    practitioner = entries["Practitioner"]["resource"]
    identifier = practitioner["identifier"][0]
    assert (identifier["system"], identifier["value"]) == ("urn:oid:1.2.250.1.71.4.2.1", f"8{RPPS}")

    [stored] = recipient.documents(f"urn:oid:{UID}")
    assert recipient.binaries() == [cda]
    assert receipt.id.startswith("DocumentReference/") and receipt.id.endswith("/_history/1")
    assert stored["masterIdentifier"]["value"] == f"urn:oid:{UID}"


def test_the_client_certificate_is_presented(connector, dmp_server, upload_dir):
    package, _ = freeze(upload_dir, clinical_document())
    connector.send(outgoing(package))
    assert [r.client_subject for r in dmp_server.requests] == ["hub.cpts-test.fr"]


def test_a_correction_replaces_the_earlier_version(connector, dmp_server, upload_dir):
    corrected = clinical_document(document_uid=UID + "1", version=2, replaces_uid=UID)
    package, _ = freeze(upload_dir, corrected)
    connector.send(outgoing(package))
    doc = entries_by_type(dmp_server.requests[0].json)["DocumentReference"]["resource"]
    assert doc["relatesTo"] == [
        {"code": "replaces", "target": {"identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{UID}"}}}
    ]


def test_the_bundle_is_the_same_on_every_attempt(upload_dir):
    package, cda = freeze(upload_dir, clinical_document())
    assert provide_document_bundle(package.document, cda) == provide_document_bundle(package.document, cda)


# --- refusals before sending ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patient_changes",
    [{"identity_status": "VALI", "ins": None, "ins_oid": None}, {"identity_status": "QUAL", "ins": None}],
)
def test_no_deposit_without_a_qualified_ins(connector, dmp_server, upload_dir, patient_changes):
    document = clinical_document()
    document = dataclasses.replace(document, patient=dataclasses.replace(document.patient, **patient_changes))
    package, _ = freeze(upload_dir, document)
    with pytest.raises(PermanentError, match="identité du patient n'est pas qualifiée"):
        connector.send(outgoing(package))
    assert dmp_server.requests == []


def test_no_deposit_without_the_authors_rpps(connector, dmp_server, upload_dir):
    document = clinical_document()
    package, _ = freeze(
        upload_dir, dataclasses.replace(document, author=dataclasses.replace(document.author, rpps=None))
    )
    with pytest.raises(PermanentError, match="RPPS"):
        connector.send(outgoing(package))
    assert dmp_server.requests == []


def test_a_stored_cda_that_no_longer_matches_its_hash_is_not_sent(connector, dmp_server, upload_dir):
    package, cda = freeze(upload_dir, clinical_document())
    path = stored_path(upload_dir, package.rendering("cda").sha256)
    path.write_bytes(cda.replace(b"DURAND", b"DUPOND"))
    with pytest.raises(PermanentError, match="altéré"):
        connector.send(outgoing(package))
    path.unlink()
    with pytest.raises(TransientError, match="introuvable"):  # a storage not mounted yet, more likely than lost
        connector.send(outgoing(package))
    assert dmp_server.requests == []


def test_only_https_endpoints_are_accepted(dmp_config):
    with pytest.raises(ValueError, match="https"):
        DmpConnector.from_config(dmp_config | {"DMP_URL": dmp_config["DMP_URL"].replace("https:", "http:")})
    assert DmpConnector.from_config(dmp_config | {"DMP_URL": None}) is None


# --- TLS (S16) ------------------------------------------------------------------------------------------


def test_without_the_client_certificate_the_server_refuses_the_handshake(dmp_config, dmp_server, upload_dir):
    package, _ = freeze(upload_dir, clinical_document())
    connector = DmpConnector.from_config(dmp_config | {"DMP_CERT_FILE": None, "DMP_KEY_FILE": None})
    with pytest.raises(TransientError, match="serveur DMP"):
        connector.send(outgoing(package))
    connector.close()
    assert dmp_server.requests == []
    assert dmp_server.wait_for_refused_handshake()


def test_a_client_certificate_from_another_authority_is_refused(dmp_config, dmp_server, upload_dir, tmp_path):
    stranger = client_certificate(TestCA(tmp_path), tmp_path, "intrus.example.org")
    package, _ = freeze(upload_dir, clinical_document())
    connector = DmpConnector.from_config(
        dmp_config | {"DMP_CERT_FILE": str(stranger.cert_file), "DMP_KEY_FILE": str(stranger.key_file)}
    )
    with pytest.raises(TransientError):
        connector.send(outgoing(package))
    connector.close()
    assert dmp_server.requests == []


def test_a_server_certificate_from_an_unknown_authority_gets_nothing(dmp_config, dmp_server, upload_dir, tmp_path):
    other_ca = TestCA(tmp_path)
    package, _ = freeze(upload_dir, clinical_document())
    connector = DmpConnector.from_config(dmp_config | {"DMP_CA_FILE": str(other_ca.ca_file)})
    with pytest.raises(TransientError, match="certificat non vérifié"):
        connector.send(outgoing(package))
    connector.close()
    assert dmp_server.requests == []


def test_the_configured_ca_bundle_wins_over_the_environments(
    dmp_config, dmp_server, upload_dir, tmp_path, test_ca, monkeypatch
):
    """requests lets REQUESTS_CA_BUNDLE replace a session's bundle unless `verify` is given per request."""
    package, _ = freeze(upload_dir, clinical_document())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(test_ca.ca_file))  # would trust the server…
    connector = DmpConnector.from_config(dmp_config | {"DMP_CA_FILE": str(TestCA(tmp_path).ca_file)})
    with pytest.raises(TransientError, match="certificat"):  # …but the configured bundle does not
        connector.send(outgoing(package))
    connector.close()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TestCA(tmp_path).ca_file))
    connector = DmpConnector.from_config(dmp_config)
    connector.send(outgoing(package))
    connector.close()
    assert len(dmp_server.requests) == 1


# --- answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_receiver_trouble_is_transient(connector, dmp_server, recipient, upload_dir, status):
    package, _ = freeze(upload_dir, clinical_document())
    dmp_server.fail_next(1, status, headers={"Retry-After": "120"})
    with pytest.raises(TransientError, match=f"réponse {status}") as caught:
        connector.send(outgoing(package))
    assert "120" in str(caught.value)
    assert recipient.documents(f"urn:oid:{UID}") == []
    connector.send(outgoing(package))  # the receiver is back
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1


def test_a_refusal_is_permanent_with_the_receivers_diagnostics(connector, dmp_server, upload_dir):
    package, _ = freeze(upload_dir, clinical_document())
    diagnostics = "DocumentReference.type : code 85208-7 inconnu du registre " + "x" * 400
    dmp_server.queue(Answer(400, operation_outcome("code-invalid", diagnostics)))
    with pytest.raises(PermanentError) as caught:
        connector.send(outgoing(package))
    text = str(caught.value)
    assert text.startswith("serveur DMP : réponse 400 (DocumentReference.type : code 85208-7 inconnu du registre")
    assert len(text) < 300  # truncated


def test_a_timeout_is_transient(dmp_config, dmp_server, recipient, upload_dir):
    package, _ = freeze(upload_dir, clinical_document())
    connector = DmpConnector.from_config(dmp_config | {"DMP_TIMEOUT_SECONDS": 0.3})
    dmp_server.queue(Answer(200, {}, delay=1.0))
    with pytest.raises(TransientError, match="délai"):
        connector.send(outgoing(package))
    connector.close()


# --- idempotency (R2) -----------------------------------------------------------------------------------


def test_a_resent_deposit_has_one_effect(connector, dmp_server, recipient, upload_dir):
    package, _ = freeze(upload_dir, clinical_document())
    first = connector.send(outgoing(package))
    again = connector.send(outgoing(package))  # e.g. the dispatcher died before recording the first
    assert len(dmp_server.requests) == 2
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1
    assert len(recipient.binaries()) == 1
    assert again.id == first.id


def test_a_receiver_that_answers_409_to_a_duplicate_already_has_it(test_ca, structure_ca, dmp_config, upload_dir):
    recipient = FhirRecipient(duplicate_status=409)
    package, _ = freeze(upload_dir, clinical_document())
    with HttpsServer(test_ca, client_ca=structure_ca, responder=recipient) as server:
        connector = DmpConnector.from_config(dmp_config | {"DMP_URL": server.url})
        connector.send(outgoing(package))
        receipt = connector.send(outgoing(package))
        connector.close()
    assert receipt.id == f"déjà présent : urn:oid:{UID}"
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1


# --- through the dispatcher -----------------------------------------------------------------------------


def queue_deposit(session, package: DocumentPackage):
    message = outbox.enqueue(
        session,
        channel="dmp",
        recipient="dmp",
        kind=f"document:{package.document.loinc}",
        payload=package.to_payload() | {"recipient_role": "patient"},
        idempotency_key=f"doc:{package.document.document_uid}:dmp:dmp",
    )
    session.flush()
    return message


def test_a_queued_deposit_is_sent_by_the_dispatcher_after_a_failure(
    db_session, sessions, dmp_config, dmp_server, recipient, upload_dir
):
    package, _ = freeze(upload_dir, clinical_document())
    message = queue_deposit(db_session, package)
    db_session.commit()
    dmp_server.fail_next(1, 503)
    connectors = build_registry(dmp_config)

    dispatch_once(sessions, connectors=connectors)
    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
    assert row.last_error.startswith("serveur DMP : réponse 503")

    dispatch_once(sessions, connectors=connectors, now=row.next_attempt_at + dt.timedelta(seconds=1))
    row = reload(db_session, message)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.SENT, 2, None)
    assert row.receipt.startswith("DocumentReference/")
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1


def test_r2_a_deposit_received_but_not_acknowledged_in_time_is_resent_with_one_effect(
    db_session, sessions, dmp_config, dmp_server, recipient, upload_dir
):
    """The receiver took the deposit, but its answer came after the dispatcher had given up: the message
    goes again with the same document id, and the receiver still holds one document."""
    package, _ = freeze(upload_dir, clinical_document())
    message = queue_deposit(db_session, package)
    db_session.commit()
    dmp_server.delay_next(1, 1.0)
    connectors = build_registry(dmp_config | {"DMP_TIMEOUT_SECONDS": 0.3})

    dispatch_once(sessions, connectors=connectors)
    row = reload(db_session, message)
    assert (row.state, row.last_error) == (OutboxState.PENDING, "serveur DMP : délai de réponse dépassé")
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1  # received all the same

    dispatch_once(sessions, connectors=connectors, now=row.next_attempt_at + dt.timedelta(seconds=1))
    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.SENT, 2)
    assert len(dmp_server.requests) == 2
    assert len(recipient.documents(f"urn:oid:{UID}")) == 1
    assert len(recipient.binaries()) == 1


def test_a_deposit_for_a_patient_without_ins_is_dead_at_once(db_session, sessions, dmp_config, dmp_server, upload_dir):
    document = clinical_document()
    unqualified = dataclasses.replace(document.patient, identity_status="PROV", ins=None, ins_oid=None)
    package, _ = freeze(upload_dir, dataclasses.replace(document, patient=unqualified))
    message = queue_deposit(db_session, package)
    db_session.commit()

    dispatch_once(sessions, connectors=build_registry(dmp_config))

    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.DEAD, 1)
    assert "n'est pas qualifiée" in row.last_error
    assert "DURAND" not in row.last_error
    assert dmp_server.requests == []
