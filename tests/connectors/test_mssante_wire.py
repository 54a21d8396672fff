"""The MSSanté message's wire form, composed by hand (connectors.mssante, connectors.xdm), is byte for byte what the
email package and ElementTree wrote before: the builders they replaced are kept here as the reference and both run
on the same messages (accents, XML and header specials, a long subject, a display name, several mailboxes, a file
name that needs RFC 2231, a package without PDF), the multipart boundary drawn from the same seeded `random`.
One deliberate difference: base64 lines of 76 characters (RFC 2045 §6.8), where the email package under UNFOLDED
wrote 996."""

import datetime as dt
import hashlib
import io
import json
import random
import string
import uuid
import zipfile
from dataclasses import replace
from email import message_from_bytes
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime
from xml.etree import ElementTree as ET

import pytest
import time_machine
from defusedxml import ElementTree as SafeET

from connectors import xdm
from connectors.base import OutgoingMessage
from connectors.email import message_id_for
from connectors.mssante import (
    _PLAIN,
    BODY,
    SUBJECT_PREFIX,
    UNFOLDED,
    MssanteConnector,
    _boundary,
    _document_attachment,
    _folded,
    _header,
    submission_uid_for,
)
from connectors.xdm import (
    CLASS_CODE,
    CONFIDENTIALITY_SCHEME,
    DOCUMENT_ENTRY,
    ENTRY_AUTHOR,
    ENTRY_CLASS,
    ENTRY_CONFIDENTIALITY,
    ENTRY_FACILITY,
    ENTRY_FORMAT,
    ENTRY_PATIENT_ID,
    ENTRY_PRACTICE,
    ENTRY_TYPE,
    ENTRY_UNIQUE_ID,
    FACILITY_CODE,
    FORMAT_CODES,
    HAS_MEMBER,
    IHE_FORMAT_SCHEME,
    LCM,
    PRACTICE_CODE,
    RIM,
    SET_AUTHOR,
    SET_CONTENT_TYPE,
    SET_PATIENT_ID,
    SET_SOURCE_ID,
    SET_UNIQUE_ID,
    SUBMISSION_SET,
    _child_id,
    _entry_uuid,
    author_institution,
    author_person,
    build_xdm_zip,
    hl7_time,
    patient_id,
    source_patient_info,
    type_code,
)
from hub.documents.clinical import ClinicalDocument, Custodian, DocumentPackage
from hub.documents.store import store_blob
from tests.connectors.test_xdm import SIGNED_AT, SUBMISSION_UID, clinical_document, rendered

SENDER = "hub-app@cpts-livradois.mssante.fr"
SENT_AT = dt.datetime(2026, 4, 2, 8, 5, 9, tzinfo=dt.UTC)
TRICKY_TITLE = 'Compte rendu « téléexpertise » & suivi <cardiologie> "urgent"\tœdème'
LONG_TITLE = "Compte rendu de téléconsultation " + "très détaillé, " * 80


def variants():
    plain = clinical_document()
    tricky = replace(
        clinical_document(qualified=False, title=TRICKY_TITLE),
        custodian=Custodian(name="Maison de santé « Les Côtes » & Cie", finess=None, local_id=None),
        author=replace(plain.author, last_name="O'NEÏL <&>", profession="", specialty=None, rpps=None),
        service_started_at=None,
        service_ended_at=None,
    )
    return {"plain": plain, "tricky": tricky, "long": clinical_document(title=LONG_TITLE)}


@pytest.mark.parametrize("name", ["plain", "tricky", "long"])
@pytest.mark.parametrize("recipient", [None, "x@patient.mssante.fr"])
def test_metadata_is_what_elementtree_wrote(name, recipient):
    package, files = rendered(variants()[name])
    arguments = {"submission_uid": SUBMISSION_UID, "now": SIGNED_AT, "intended_recipient": recipient}
    assert xdm.metadata_xml(package, files, **arguments) == reference_metadata_xml(package, files, **arguments)


NOT_XML = "\x00\x01\x08\x0b\x0c\x1f\ud800\udfff\ufffe\uffff"  # what XML 1.0 forbids; \t \n \r \x7f it allows


@pytest.mark.parametrize("forbidden", [NOT_XML, *NOT_XML], ids=["all", *(f"U+{ord(c):04X}" for c in NOT_XML)])
def test_metadata_drops_the_characters_xml_forbids(forbidden):
    def dirty(text: str) -> str:
        return "".join(f"{c}{forbidden[n % len(forbidden)]}" for n, c in enumerate(text))

    plain = clinical_document(title="Compte rendu\t\x7f\u2028 & <suivi>")
    clean = replace(
        plain,
        custodian=Custodian(name='MSP "Côtes"\n', finess=None, local_id="loc-1"),
        author=replace(plain.author, last_name="O'Neïl\r", profession="Médecin"),
    )
    dirtied = replace(
        clean,
        title=dirty(clean.title),
        custodian=Custodian(name=dirty(clean.custodian.name), finess=None, local_id=dirty("loc-1")),
        author=replace(clean.author, last_name=dirty(clean.author.last_name), profession=dirty("Médecin")),
    )
    package, files = rendered(clean)
    arguments = {"submission_uid": SUBMISSION_UID, "now": SIGNED_AT}

    written = xdm.metadata_xml(replace(package, document=dirtied), files, **arguments, intended_recipient=dirty("x@y"))

    SafeET.fromstring(written)  # well-formed
    expected = reference_metadata_xml(package, files, **arguments, intended_recipient="x@y")
    assert written == expected  # the same as the clean input, to the byte


def test_a_value_left_empty_is_written_as_an_empty_element():
    package, files = rendered(clinical_document())
    author = replace(package.document.author, profession="\x01")
    written = xdm.metadata_xml(
        replace(package, document=replace(package.document, author=author)),
        files,
        submission_uid=SUBMISSION_UID,
        now=SIGNED_AT,
    )
    SafeET.fromstring(written)
    assert b"<rim:Value />" in written and b"<rim:Value></rim:Value>" not in written


MAILBOXES = [
    "paul.martin@hopital.mssante.fr",
    "255081416802538@patient.mssante.fr",
    "Dr Jeanne Roux <jeanne.roux@medecin.mssante.fr>",
]


@pytest.mark.parametrize("name", ["plain", "tricky", "long"])
def test_the_message_is_what_the_email_package_wrote(name, test_ca, tmp_path):
    connector = hub_connector(test_ca, tmp_path)
    package, files = rendered(variants()[name])
    if name == "tricky":  # a file name the email package writes with RFC 2231, and no readable PDF at all
        cda, pdf = package.renderings
        package = replace(package, renderings=(cda, replace(pdf, filename="Compte rendu n°1 « é ».pdf")))
        files["Compte rendu n°1 « é ».pdf"] = files["DOC0001.PDF"]
    packages = [package]
    if name == "plain":
        packages.append(replace(package, renderings=package.renderings[:1]))
    for rendering in package.renderings:
        store_blob(tmp_path, files[rendering.filename])

    with time_machine.travel(SENT_AT, tick=False):
        for seed, (document, recipient) in enumerate((p, r) for p in packages for r in MAILBOXES):
            message = document_message(seed, document, recipient)
            random.seed(seed)
            composed = connector.compose(message)
            random.seed(seed)
            assert composed == reference_email(connector, message), (name, recipient)
    connector.close()


def test_every_base64_line_is_at_most_76_characters_and_decodes_to_the_file(test_ca, tmp_path):
    connector = hub_connector(test_ca, tmp_path)
    package, files = rendered(variants()["long"])
    for rendering in package.renderings:
        store_blob(tmp_path, files[rendering.filename])
    message = document_message(1, package, MAILBOXES[0])
    wire = connector.compose(message)
    connector.close()

    parsed = message_from_bytes(wire, policy=UNFOLDED)
    attachments = [part for part in parsed.walk() if part["Content-Transfer-Encoding"] == "base64"]
    assert [part.get_filename() for part in attachments] == ["IHE_XDM.zip", "DOC0001.PDF"]
    for part in attachments:
        lines = part.get_payload().split("\r\n")
        assert lines[-1] == "" and all(0 < len(line) <= 76 for line in lines[:-1])
        assert all(len(line) == 76 for line in lines[:-2])  # full lines, the last one holding the rest
    assert attachments[1].get_content() == files["DOC0001.PDF"]
    assert zipfile.ZipFile(io.BytesIO(attachments[0].get_content())).namelist()


def test_a_documents_readable_pdf_is_encoded_once_for_all_its_mailboxes(test_ca, tmp_path):
    connector = hub_connector(test_ca, tmp_path)
    package, files = rendered(variants()["plain"])
    for rendering in package.renderings:
        store_blob(tmp_path, files[rendering.filename])
    _document_attachment.cache_clear()

    with time_machine.travel(SENT_AT, tick=False):
        for seed, recipient in enumerate(MAILBOXES):
            message = document_message(seed, package, recipient)
            random.seed(seed)
            composed = connector.compose(message)
            random.seed(seed)
            assert composed == reference_email(connector, message)
    connector.close()

    cache = _document_attachment.cache_info()
    assert (cache.misses, cache.hits) == (1, len(MAILBOXES) - 1)


EDGE_ADDRESSES = [
    ".a@x.fr",
    "a.@x.fr",
    "a..b@x.fr",
    "a@x..fr",
    "a@.x.fr",
    "a@x.fr.",
    "a@-x.fr",
    "a@x-.fr",
    "%a@x",
    "a@1.2.3.4",
    "a+b@x.fr",
    "A_B@X.FR",
    "a@x",
    "-@-",
    "a@" + "x" * 300 + ".fr",
    "a" * 100 + "@x.fr",
    "a@" + "x" * 950,
    "a@" + "x" * 990,  # too long for one line after `Disposition-Notification-To: `: folded, not written as is
    "a" * 60 + "@" + "x" * 990,
]


def test_headers_written_as_they_are_equal_the_policys_folding():
    """_header's fast path (a plain address, Message-ID or Date written unchanged) against the policy's folding, on
    edge cases and a few hundred random addresses drawn from the fast path's own alphabet."""
    rng = random.Random(1)
    local, domain = string.ascii_letters + string.digits + "._%+-", string.ascii_letters + string.digits + ".-"
    addresses = EDGE_ADDRESSES + [
        "".join(rng.choices(local, k=rng.randint(1, 8))) + "@" + "".join(rng.choices(domain, k=rng.randint(1, 8)))
        for _ in range(300)
    ]
    values = {name: addresses for name in ("From", "To", "Disposition-Notification-To")}
    values["Message-ID"] = [message_id_for(f"key-{n}", "cpts-livradois.mssante.fr") for n in range(20)]
    values["Date"] = [format_datetime(SENT_AT + dt.timedelta(days=n * 37, seconds=n * 4099)) for n in range(20)]
    plain = 0
    for name, candidates in values.items():
        for value in candidates:
            plain += bool(_PLAIN[name].fullmatch(value))
            assert _header(name, value) == _folded(name, value), (name, value)
    assert plain > 600  # most take the fast path


def test_the_boundary_is_drawn_and_checked_as_the_email_package_does():
    random.seed(7)
    drawn = _boundary(b"")
    texts = [
        f"x\n--{drawn}\n--{drawn}.0--\n".encode(),  # found twice: extended to .1
        f"x\r\n--{drawn}\r\n".encode(),  # with CRLF the generator's `$` does not see it, nor does ours
    ]
    for text in texts:
        random.seed(7)
        expected = BytesGenerator._make_boundary(text)
        random.seed(7)
        assert _boundary(text) == expected
    assert expected == drawn


# --- the reference: the builders replaced, unchanged ------------------------------------------------------------


def reference_email(connector: MssanteConnector, message: OutgoingMessage) -> bytes:
    package = DocumentPackage.from_payload(message.data)
    files = connector.read_documents(package)
    document = package.document
    zipped = build_xdm_zip(
        package,
        files,
        submission_uid=submission_uid_for(message.idempotency_key),
        now=document.created_at,
        intended_recipient=message.recipient,
    )
    email = EmailMessage(policy=UNFOLDED)
    email["From"] = connector.sender
    email["To"] = message.recipient
    email["Subject"] = f"{SUBJECT_PREFIX}{document.title}"
    email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    email["Message-ID"] = message_id_for(message.idempotency_key, connector.domain)
    email["Disposition-Notification-To"] = connector.sender
    email.set_content(BODY.format(sender=document.custodian.name))
    _add_attachment(email, zipped, "zip", "IHE_XDM.zip")
    pdf = next((r for r in package.renderings if r.role == "pdf"), None)
    if pdf is not None:
        _add_attachment(email, files[pdf.filename], "pdf", pdf.filename)
    return email.as_bytes(policy=email.policy.clone(linesep="\r\n"))  # as SmtpTransport.deliver wrote it


def _add_attachment(email: EmailMessage, content: bytes, subtype: str, filename: str) -> None:
    """EmailMessage.add_attachment, but with the part's base64 cut at 76 characters (RFC 2045 §6.8): the content
    manager cuts at the part's max_line_length (78) // 4 * 4; the generator folds headers with its own policy."""
    if not email.is_multipart():
        email.make_mixed()
    part = EmailMessage(policy=UNFOLDED.clone(max_line_length=78))
    part.set_content(content, maintype="application", subtype=subtype, filename=filename)
    email.attach(part)


XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ET.register_namespace("lcm", LCM)
ET.register_namespace("rim", RIM)


def reference_metadata_xml(
    package: DocumentPackage,
    files: dict[str, bytes],
    *,
    submission_uid: str,
    now: dt.datetime,
    intended_recipient: str | None = None,
) -> bytes:
    document = package.document
    root = ET.Element(f"{{{LCM}}}SubmitObjectsRequest")
    objects = ET.SubElement(root, _rim("RegistryObjectList"))
    entry_ids = []
    for rendering in package.renderings:
        entry_id = _entry_uuid(submission_uid, rendering.filename)
        entry_ids.append(entry_id)
        _document_entry(objects, document, entry_id, rendering.mime, rendering.filename, files[rendering.filename])
    set_id = _entry_uuid(submission_uid, "SubmissionSet01")
    _submission_set(objects, document, set_id, submission_uid, now, intended_recipient)
    for number, entry_id in enumerate(entry_ids, start=1):
        association = ET.SubElement(
            objects,
            _rim("Association"),
            id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{submission_uid}/association/{number}')}",
            associationType=HAS_MEMBER,
            sourceObject=set_id,
            targetObject=entry_id,
        )
        _slot(association, "SubmissionSetStatus", "Original")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


# --- the ebRIM objects --------------------------------------------------------------------------------------


def _document_entry(parent, document: ClinicalDocument, entry_id, mime, filename, content: bytes) -> None:
    entry = ET.SubElement(
        parent,
        _rim("ExtrinsicObject"),
        id=entry_id,
        mimeType=mime,
        objectType=DOCUMENT_ENTRY,
        status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    )
    _slot(entry, "creationTime", hl7_time(document.created_at))
    _slot(entry, "hash", hashlib.sha1(content).hexdigest())  # noqa: S324 -- XDS mandates SHA-1
    _slot(entry, "size", str(len(content)))
    _slot(entry, "languageCode", "fr-FR")
    _slot(entry, "URI", filename)
    _slot(entry, "legalAuthenticator", author_person(document.author))
    if document.service_started_at:
        _slot(entry, "serviceStartTime", hl7_time(document.service_started_at))
    if document.service_ended_at:
        _slot(entry, "serviceStopTime", hl7_time(document.service_ended_at))
    _slot(entry, "sourcePatientId", patient_id(document))
    _slot(entry, "sourcePatientInfo", *source_patient_info(document))
    _name(entry, document.title)
    _author(entry, document, entry_id, ENTRY_AUTHOR)
    _classify(entry, entry_id, ENTRY_CLASS, CLASS_CODE)
    _classify(entry, entry_id, ENTRY_CONFIDENTIALITY, (document.confidentiality, CONFIDENTIALITY_SCHEME, "Normal"))
    _classify(entry, entry_id, ENTRY_FORMAT, (FORMAT_CODES[mime][0], IHE_FORMAT_SCHEME, FORMAT_CODES[mime][1]))
    _classify(entry, entry_id, ENTRY_FACILITY, FACILITY_CODE)
    _classify(entry, entry_id, ENTRY_PRACTICE, PRACTICE_CODE)
    _classify(entry, entry_id, ENTRY_TYPE, type_code(document))
    _identify(entry, entry_id, ENTRY_PATIENT_ID, patient_id(document), "XDSDocumentEntry.patientId")
    unique_id = document.document_uid if mime == "text/xml" else f"{document.document_uid}.2"
    _identify(entry, entry_id, ENTRY_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId")


def _submission_set(parent, document, set_id, submission_uid, now, intended_recipient) -> None:
    package = ET.SubElement(parent, _rim("RegistryPackage"), id=set_id)
    _slot(package, "submissionTime", hl7_time(now))
    if intended_recipient:
        # XON|XCN|XTN: only the telecommunication part, the recipient's secure mailbox.
        _slot(package, "intendedRecipient", f"||^^Internet^{intended_recipient}")
    _name(package, document.title)
    _author(package, document, set_id, SET_AUTHOR)
    _classify(package, set_id, SET_CONTENT_TYPE, type_code(document))
    ET.SubElement(
        package,
        _rim("Classification"),
        id=_child_id(set_id, "submission-set"),
        classifiedObject=set_id,
        classificationNode=SUBMISSION_SET,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    _identify(package, set_id, SET_UNIQUE_ID, submission_uid, "XDSSubmissionSet.uniqueId")
    _identify(
        package, set_id, SET_SOURCE_ID, document.custodian.local_id or submission_uid, "XDSSubmissionSet.sourceId"
    )
    _identify(package, set_id, SET_PATIENT_ID, patient_id(document), "XDSSubmissionSet.patientId")


def _author(parent, document: ClinicalDocument, object_id: str, scheme: str) -> None:
    author = ET.SubElement(
        parent,
        _rim("Classification"),
        id=_child_id(object_id, scheme),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation="",
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    _slot(author, "authorPerson", author_person(document.author))
    _slot(author, "authorInstitution", author_institution(document))
    if document.author.profession:
        _slot(author, "authorRole", document.author.profession)


def _classify(parent, object_id: str, scheme: str, coded: tuple[str, str, str]) -> None:
    code, coding_scheme, label = coded
    element = ET.SubElement(
        parent,
        _rim("Classification"),
        id=_child_id(object_id, scheme),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation=code,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    _slot(element, "codingScheme", coding_scheme)
    _name(element, label)


def _identify(parent, object_id: str, scheme: str, value: str, name: str) -> None:
    element = ET.SubElement(
        parent,
        _rim("ExternalIdentifier"),
        id=_child_id(object_id, scheme),
        identificationScheme=scheme,
        registryObject=object_id,
        value=value,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier",
    )
    _name(element, name)


def _slot(parent, name: str, *values: str) -> None:
    slot = ET.SubElement(parent, _rim("Slot"), name=name)
    value_list = ET.SubElement(slot, _rim("ValueList"))
    for value in values:
        ET.SubElement(value_list, _rim("Value")).text = value


def _name(parent, text: str) -> None:
    name = ET.SubElement(parent, _rim("Name"))
    ET.SubElement(name, _rim("LocalizedString"), {XML_LANG: "fr-FR", "value": text})


def _rim(tag: str) -> str:
    return f"{{{RIM}}}{tag}"


def document_message(seed: int, package, recipient: str) -> OutgoingMessage:
    """The outbox message of one package's document to one mailbox, as the delivery queues it."""
    return OutgoingMessage(
        id=seed,
        idempotency_key=f"doc:{package.document.document_uid}:mssante:{recipient}",
        channel="mssante",
        recipient=recipient,
        kind="document:85208-7",
        payload=json.dumps(package.to_payload()),
    )


def hub_connector(test_ca, tmp_path) -> MssanteConnector:
    """The hub's MSSanté connector with its client certificate, documents read from `tmp_path` (nothing sent)."""
    cert_file, key_file = test_ca.client_cert(tmp_path, "hub-app.cpts-livradois.fr")
    return MssanteConnector(
        host="127.0.0.1", sender=SENDER, upload_dir=tmp_path, cert_file=str(cert_file), key_file=str(key_file)
    )
