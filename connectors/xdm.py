"""The IHE XDM package an MSSanté message carries (ANS volet "transmission de documents CDA par messagerie
sécurisée"): a zip with `INDEX.HTM`, `README.TXT` and `IHE_XDM/SUBSET01/` holding the XDS metadata
(`METADATA.XML`, an ebRIM SubmitObjectsRequest) and the documents themselves.

The same package and submission give the same bytes, so a message re-sent after a crash carries the very
same attachment (R2). The document hash is SHA-1: XDS says so, whatever the hub stores under.
"""

import datetime as dt
import hashlib
import html
import struct
import sys
import uuid
import zipfile
import zlib

from hub.documents.clinical import ClinicalDocument, DocumentPackage, ProfessionalIdentity
from hub.xmltext import holds_non_xml, xml_text

SUBSET = "IHE_XDM/SUBSET01"
HUB_NAME = "Hub de coordination de la CPTS"

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"

# XDS classification schemes and identification schemes (IHE ITI TF-3 4.2.5).
DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
ENTRY_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
ENTRY_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
ENTRY_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
ENTRY_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
ENTRY_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
ENTRY_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
ENTRY_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
ENTRY_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ENTRY_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SET_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SET_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SET_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SET_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SET_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_SCHEME = "2.16.840.1.113883.5.25"
IHE_FORMAT_SCHEME = "1.3.6.1.4.1.19376.1.2.3"
RPPS_OID = "1.2.250.1.71.4.2.1"  # IdNat_PS
STRUCTURE_OID = "1.2.250.1.71.4.2.2"  # IdNat_Struct
# TRE_A03 classCode "Compte rendu", TRE_R02 "Cabinet de groupe", TRE_A01 practice setting "Ambulatoire".
CLASS_CODE = ("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")
FACILITY_CODE = ("SA08", "1.2.250.1.71.4.2.4", "Cabinet de groupe")
PRACTICE_CODE = ("AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire")
# A CI-SIS level-1 CDA wraps a PDF (XDS-SD); the PDF next to it is self-describing by its MIME type.
FORMAT_CODES = {
    "text/xml": ("urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en PDF/A-1"),
    "application/pdf": ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "Format défini par le type MIME"),
}
TYPE_LABELS = {
    "85208-7": "CR de télémédecine",
    "11506-3": "CR de suivi de soins par auxiliaire médical",
    "75496-0": "Demande d'acte de télémédecine",
    "96349-6": "Lettre d'adressage",
}


def build_xdm_zip(
    package: DocumentPackage,
    files: dict[str, bytes],
    *,
    submission_uid: str,
    now: dt.datetime,
    intended_recipient: str | None = None,
) -> bytes:
    """The XDM zip for one package. `files` maps each rendering's file name to its bytes; one
    XDSDocumentEntry per rendering, in the package's order."""
    missing = [r.filename for r in package.renderings if r.filename not in files]
    if missing or not package.renderings:
        raise ValueError(f"documents absents du paquet : {', '.join(missing) or 'aucun'}")
    metadata = metadata_xml(
        package, files, submission_uid=submission_uid, now=now, intended_recipient=intended_recipient
    )
    members = [
        ("INDEX.HTM", index_htm(package).encode()),
        ("README.TXT", readme_txt(package, now=now).encode()),
        (f"{SUBSET}/METADATA.XML", metadata),
        *((f"{SUBSET}/{r.filename}", files[r.filename]) for r in package.renderings),
    ]
    return _zip(members, now, documents=len(package.renderings))


def metadata_xml(
    package: DocumentPackage,
    files: dict[str, bytes],
    *,
    submission_uid: str,
    now: dt.datetime,
    intended_recipient: str | None = None,
) -> bytes:
    document = package.document
    objects: list[_Node] = []
    entry_ids = []
    for rendering in package.renderings:
        entry_id = _entry_uuid(submission_uid, rendering.filename)
        entry_ids.append(entry_id)
        objects.append(
            _document_entry(document, entry_id, rendering.mime, rendering.filename, files[rendering.filename])
        )
    set_id = _entry_uuid(submission_uid, "SubmissionSet01")
    objects.append(_submission_set(document, set_id, submission_uid, now, intended_recipient))
    for number, entry_id in enumerate(entry_ids, start=1):
        association_id = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{submission_uid}/association/{number}')}"
        attributes = (
            ("id", association_id),
            ("associationType", HAS_MEMBER),
            ("sourceObject", set_id),
            ("targetObject", entry_id),
        )
        objects.append(("rim:Association", attributes, [_slot("SubmissionSetStatus", "Original")]))
    root: _Node = ("lcm:SubmitObjectsRequest", ROOT_NAMESPACES, [("rim:RegistryObjectList", (), objects)])
    try:
        xml = _serialised(root, clean=False).encode()
    except UnicodeEncodeError:  # a lone surrogate
        xml = b""
    if not xml or holds_non_xml(xml):  # rare: free text with characters XML forbids, written again without them
        xml = _serialised(root, clean=True).encode()
    return xml


# --- the ebRIM objects --------------------------------------------------------------------------------------
# Built as (tag, attributes, children or text) tuples and written out by _write: ElementTree's tree and
# serializer were a third of composing an MSSanté message. The output is ElementTree's, byte for byte
# (ET.indent's two spaces, `<tag />` when empty, its escaping), except that characters XML forbids are dropped
# where ElementTree wrote them: tests/connectors/test_mssante_wire.py keeps the ElementTree builder as the reference.

_Node = tuple[str, tuple[tuple[str, str], ...], "list[_Node] | str | None"]
ROOT_NAMESPACES: tuple[tuple[str, str], ...] = (("xmlns:lcm", LCM), ("xmlns:rim", RIM))
CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_IDENTIFIER = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"


def _document_entry(document: ClinicalDocument, entry_id, mime, filename, content: bytes) -> _Node:
    children = [
        _slot("creationTime", hl7_time(document.created_at)),
        _slot("hash", hashlib.sha1(content).hexdigest()),  # noqa: S324 -- XDS mandates SHA-1
        _slot("size", str(len(content))),
        _slot("languageCode", "fr-FR"),
        _slot("URI", filename),
        _slot("legalAuthenticator", author_person(document.author)),
    ]
    if document.service_started_at:
        children.append(_slot("serviceStartTime", hl7_time(document.service_started_at)))
    if document.service_ended_at:
        children.append(_slot("serviceStopTime", hl7_time(document.service_ended_at)))
    unique_id = document.document_uid if mime == "text/xml" else f"{document.document_uid}.2"
    children += [
        _slot("sourcePatientId", patient_id(document)),
        _slot("sourcePatientInfo", *source_patient_info(document)),
        _name(document.title),
        _author(document, entry_id, ENTRY_AUTHOR),
        _classify(entry_id, ENTRY_CLASS, CLASS_CODE),
        _classify(entry_id, ENTRY_CONFIDENTIALITY, (document.confidentiality, CONFIDENTIALITY_SCHEME, "Normal")),
        _classify(entry_id, ENTRY_FORMAT, (FORMAT_CODES[mime][0], IHE_FORMAT_SCHEME, FORMAT_CODES[mime][1])),
        _classify(entry_id, ENTRY_FACILITY, FACILITY_CODE),
        _classify(entry_id, ENTRY_PRACTICE, PRACTICE_CODE),
        _classify(entry_id, ENTRY_TYPE, type_code(document)),
        _identify(entry_id, ENTRY_PATIENT_ID, patient_id(document), "XDSDocumentEntry.patientId"),
        _identify(entry_id, ENTRY_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId"),
    ]
    attributes = (
        ("id", entry_id),
        ("mimeType", mime),
        ("objectType", DOCUMENT_ENTRY),
        ("status", "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"),
    )
    return ("rim:ExtrinsicObject", attributes, children)


def _submission_set(document, set_id, submission_uid, now, intended_recipient) -> _Node:
    children = [_slot("submissionTime", hl7_time(now))]
    if intended_recipient:
        # XON|XCN|XTN: only the telecommunication part, the recipient's secure mailbox.
        children.append(_slot("intendedRecipient", f"||^^Internet^{intended_recipient}"))
    submission_set = (
        ("id", _child_id(set_id, "submission-set")),
        ("classifiedObject", set_id),
        ("classificationNode", SUBMISSION_SET),
        ("objectType", CLASSIFICATION),
    )
    children += [
        _name(document.title),
        _author(document, set_id, SET_AUTHOR),
        _classify(set_id, SET_CONTENT_TYPE, type_code(document)),
        ("rim:Classification", submission_set, None),
        _identify(set_id, SET_UNIQUE_ID, submission_uid, "XDSSubmissionSet.uniqueId"),
        _identify(set_id, SET_SOURCE_ID, document.custodian.local_id or submission_uid, "XDSSubmissionSet.sourceId"),
        _identify(set_id, SET_PATIENT_ID, patient_id(document), "XDSSubmissionSet.patientId"),
    ]
    return ("rim:RegistryPackage", (("id", set_id),), children)


def _author(document: ClinicalDocument, object_id: str, scheme: str) -> _Node:
    slots = [
        _slot("authorPerson", author_person(document.author)),
        _slot("authorInstitution", author_institution(document)),
    ]
    if document.author.profession:
        slots.append(_slot("authorRole", document.author.profession))
    attributes = (
        ("id", _child_id(object_id, scheme)),
        ("classificationScheme", scheme),
        ("classifiedObject", object_id),
        ("nodeRepresentation", ""),
        ("objectType", CLASSIFICATION),
    )
    return ("rim:Classification", attributes, slots)


def _classify(object_id: str, scheme: str, coded: tuple[str, str, str]) -> _Node:
    code, coding_scheme, label = coded
    attributes = (
        ("id", _child_id(object_id, scheme)),
        ("classificationScheme", scheme),
        ("classifiedObject", object_id),
        ("nodeRepresentation", code),
        ("objectType", CLASSIFICATION),
    )
    return ("rim:Classification", attributes, [_slot("codingScheme", coding_scheme), _name(label)])


def _identify(object_id: str, scheme: str, value: str, name: str) -> _Node:
    attributes = (
        ("id", _child_id(object_id, scheme)),
        ("identificationScheme", scheme),
        ("registryObject", object_id),
        ("value", value),
        ("objectType", EXTERNAL_IDENTIFIER),
    )
    return ("rim:ExternalIdentifier", attributes, [_name(name)])


def _slot(name: str, *values: str) -> _Node:
    return ("rim:Slot", (("name", name),), [("rim:ValueList", (), [("rim:Value", (), value) for value in values])])


def _name(text: str) -> _Node:
    return ("rim:Name", (), [("rim:LocalizedString", (("xml:lang", "fr-FR"), ("value", text)), None)])


def _serialised(root: _Node, *, clean: bool) -> str:
    out = ["<?xml version='1.0' encoding='UTF-8'?>\n"]
    _write(out, root, "", clean)
    return "".join(out)


def _write(out: list[str], node: _Node, indent: str, clean: bool) -> None:
    tag, attributes, content = node
    out.append(f"<{tag}")
    for name, value in attributes:
        out.append(f' {name}="{_escape_attribute(xml_text(value) if clean else value)}"')
    if clean and isinstance(content, str):
        content = xml_text(content)
    if not content:
        out.append(" />")
    elif isinstance(content, str):
        out.append(f">{_escape_text(content)}</{tag}>")
    else:
        inner = indent + "  "
        out.append(">")
        for child in content:
            out.append("\n" + inner)
            _write(out, child, inner, clean)
        out.append(f"\n{indent}</{tag}>")


# xml.sax.saxutils.escape gives the same text at ~3× the cost (it replaces unconditionally, then walks a dict):
# 0.4 µs more on each of a package's ~250 values.
def _escape_text(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    # Line ends and tabs as character references, as ElementTree writes them: they survive attribute normalisation.
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _entry_uuid(submission_uid: str, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{submission_uid}/{name}')}"


def _child_id(object_id: str, name: str) -> str:
    """Every object of the submission has a UUID id, derived from its owner's: stable, and unique."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{object_id}/{name}')}"


# --- HL7 v2 data types the XDS slots use ----------------------------------------------------------------------


def hl7_time(moment: dt.datetime) -> str:
    """XDS times are UTC, `YYYYMMDDHHMMSS`."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def patient_id(document: ClinicalDocument) -> str:
    """The INS under its OID when the identity is qualified (the only case it is in the package), else
    the hub's local id under the CPTS's arc."""
    patient = document.patient
    if patient.ins and patient.ins_oid:
        return f"{patient.ins}^^^&{patient.ins_oid}&ISO^NH"
    authority, _, local = patient.local_id.rpartition(".")
    return f"{local}^^^&{authority}&ISO^PI"


def source_patient_info(document: ClinicalDocument) -> list[str]:
    patient = document.patient
    info = [
        f"PID-3|{patient_id(document)}",
        f"PID-5|{patient.birth_name}^{patient.first_birth_given_name}^^^^^L",
    ]
    if patient.used_last_name:
        info.append(f"PID-5|{patient.used_last_name}^{patient.used_first_name or ''}^^^^^D")
    info += [f"PID-7|{patient.birth_date:%Y%m%d}", f"PID-8|{patient.sex}"]
    if patient.birth_place_insee:
        info.append(f"PID-11|^^^^^^BDL^^{patient.birth_place_insee}")
    return info


def author_person(author: ProfessionalIdentity) -> str:
    """XCN with the IdNat_PS (`8` + RPPS) under the ANS's OID."""
    idnat = author.idnat_ps or ""
    authority = f"&{RPPS_OID}&ISO" if idnat else ""
    return f"{idnat}^{author.last_name}^{author.first_name}^^^^^^{authority}^D^^^{'IDNPS' if idnat else ''}"


def author_institution(document: ClinicalDocument) -> str:
    """XON; a FINESS becomes the IdNat_Struct `1` + FINESS."""
    custodian = document.custodian
    if custodian.finess:
        return f"{custodian.name}^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^1{custodian.finess}"
    return custodian.name


def type_code(document: ClinicalDocument) -> tuple[str, str, str]:
    return (document.loinc, LOINC, TYPE_LABELS.get(document.loinc, document.title))


# --- the human-readable files and the zip ----------------------------------------------------------------------


def readme_txt(package: DocumentPackage, *, now: dt.datetime) -> str:
    custodian = package.document.custodian
    sender = custodian.name + (f" (FINESS {custodian.finess})" if custodian.finess else "")
    lines = [
        "Lisez-moi",
        "",
        f"Structure émettrice : {sender}",
        f"Application : {HUB_NAME}",
        f"Date de constitution du paquet : {now.astimezone(dt.UTC):%d/%m/%Y %H:%M} (UTC)",
        "",
        "Ce paquet suit le profil IHE XDM (Cross-Enterprise Document Media Interchange).",
        f"Les documents et leurs métadonnées XDS sont dans le répertoire {SUBSET}.",
        "Le fichier INDEX.HTM en donne la liste.",
        "",
    ]
    return "\r\n".join(lines)


def index_htm(package: DocumentPackage) -> str:
    rows = "\n".join(
        f'<li><a href="{SUBSET}/{html.escape(r.filename)}">{html.escape(r.filename)}</a> '
        f"({'CDA R2' if r.role == 'cda' else 'PDF'}, {r.size} octets)</li>"
        for r in package.renderings
    )
    title = html.escape(package.document.title)
    return (
        '<!DOCTYPE html>\n<html lang="fr">\n<head><meta charset="utf-8"><title>Contenu du paquet</title></head>\n'
        f"<body>\n<h1>Contenu du paquet</h1>\n<p>{title}</p>\n<ul>\n{rows}\n</ul>\n"
        f'<p><a href="README.TXT">Lisez-moi</a> — <a href="{SUBSET}/METADATA.XML">métadonnées XDS</a></p>\n'
        "</body>\n</html>\n"
    )


def _zip(members: list[tuple[str, bytes]], now: dt.datetime, *, documents: int = 0) -> bytes:
    """Fixed entry order, times and attributes: the same input gives the same bytes — the bytes zipfile.ZipFile
    writes for them (tests/connectors/test_xdm.py keeps it as the reference), the documents stored and the other
    members deflated. The last `documents` members are documents: a PDF's streams are deflated already and a CDA is
    nine tenths base64, so deflating them gained 5 % and 29 % of their size for ~5.5 ms of the worker's CPU per
    message (the most of composing it); the small per-mailbox members shrink by two thirds and cost little."""
    stamp = max(now.astimezone(dt.UTC).timetuple()[:6], (1980, 1, 1, 0, 0, 0))
    dosdate = (stamp[0] - 1980) << 9 | stamp[1] << 5 | stamp[2]
    dostime = stamp[3] << 11 | stamp[4] << 5 | (stamp[5] // 2)
    body: list[bytes] = []
    directory: list[bytes] = []
    offset = 0
    for number, (name, content) in enumerate(members):
        method, data = (_stored if number >= len(members) - documents else _deflated)(content)
        # zipfile's rule: an ASCII name as is, any other in UTF-8 with the language-encoding flag.
        filename, flags = (name.encode("ascii"), 0) if name.isascii() else (name.encode(), _UTF8_NAME)
        sizes = (zlib.crc32(content), len(data), len(content), len(filename))
        header = _LOCAL_HEADER.pack(
            *(b"PK\x03\x04", _VERSION, 0, flags, method, dostime, dosdate, *sizes, 0)  # no extra field
        )
        body += [header, filename, data]
        entry = _CENTRAL_ENTRY.pack(
            *(b"PK\x01\x02", _VERSION, _CREATE_SYSTEM, _VERSION, 0, flags, method, dostime, dosdate),
            *(*sizes, 0, 0, 0, 0, _ATTRIBUTES, offset),  # no extra field nor comment, disk 0, no internal attributes
        )
        directory += [entry, filename]
        offset += len(header) + len(filename) + len(data)
    central = b"".join(directory)
    count = len(members)
    end = _END_RECORD.pack(b"PK\x05\x06", 0, 0, count, count, len(central), offset, 0)
    return b"".join(body) + central + end


# The records zipfile writes (APPNOTE 4.3.7, 4.3.12, 4.3.16), without the ZIP64 forms: documents are far below 2 GB.
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_END_RECORD = struct.Struct("<4s4H2LH")
# ZipInfo's defaults: version 2.0, and the "version made by" names the system that wrote it; rw-r--r--.
_VERSION = 20
_CREATE_SYSTEM = 0 if sys.platform == "win32" else 3
_ATTRIBUTES = 0o644 << 16
_UTF8_NAME = 0x800


def _deflated(content: bytes) -> tuple[int, bytes]:
    """Raw deflate at zlib's default level, as zipfile's ZIP_DEFLATED writes it."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return zipfile.ZIP_DEFLATED, compressor.compress(content) + compressor.flush()


def _stored(content: bytes) -> tuple[int, bytes]:
    return zipfile.ZIP_STORED, content
