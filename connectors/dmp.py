"""Deposit of a CDA document in the DMP / Mon espace santé as an IHE MHD "Provide Document Bundle" (ITI-65)
in the ANS PDSm shape, over HTTPS with the structure's client certificate (S16).

The outbox message carries a `DocumentPackage` (hub.documents.clinical): the document's metadata and
the hash and size of its stored CDA. The bundle is rebuilt from the stored bytes on every attempt, so every
attempt sends the same document, and a stored file that no longer matches its hash is never sent.

The document's unique id is the idempotency key: the DocumentReference entry is a conditional create
(`If-None-Exist: identifier=urn:oid:<uid>`), and a receiver that answers 409 or 412 because it already
holds the document has it, which is what the deposit wanted.
"""

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path

import requests

from connectors.base import OutgoingMessage, PermanentError, Receipt, TransientError
from connectors.https_client import https_session, post, raise_for_status, require_https
from connectors.targets import allows_private_hosts
from hub.config import PROJECT_ROOT
from hub.documents.clinical import (
    HUB_DOCUMENT_OID_ROOT,
    ClinicalDocument,
    DocumentPackage,
    ProfessionalIdentity,
)
from hub.documents.store import read_stored

WHAT = "serveur DMP"
FHIR_JSON = "application/fhir+json"
ALREADY_THERE = {409, 412}

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
MHD = "https://profiles.ihe.net/ITI/MHD/StructureDefinition"
PROFILES = {
    "Bundle": [f"{PDSM}/pdsm-comprehensive-provide-document-bundle", f"{MHD}/IHE.MHD.Comprehensive.ProvideBundle"],
    "List": [f"{PDSM}/pdsm-comprehensive-submissionset", f"{MHD}/IHE.MHD.Comprehensive.SubmissionSet"],
    "DocumentReference": [
        f"{PDSM}/pdsm-comprehensive-document-reference",
        f"{MHD}/IHE.MHD.Comprehensive.DocumentReference",
    ],
}
RFC3986 = "urn:ietf:rfc:3986"
LOINC = "http://loinc.org"
RPPS_OID = "1.2.250.1.71.4.2.1"  # IdNat_PS: "8" + RPPS
CLASS_SYSTEM = "urn:oid:1.2.250.1.213.1.1.4.1"  # TRE_A03 ClasseDocument
CLASSES = {"59284-0": ("52", "Certificat, déclaration"), "56446-8": ("95", "Document de gestion")}
DEFAULT_CLASS = ("10", "Compte rendu")
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# CDA R2 level 1 with the PDF as nonXMLBody: the IHE XDS-SD format (CI-SIS "structuration minimale").
FORMAT = {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3", "code": "urn:ihe:iti:xds-sd:pdf:2008"}
SUBMISSION_SET_CODE = {"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}
SOURCE_ID_EXTENSION = f"{MHD}/ihe-sourceId"
INS_TYPES = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.10": "INS-NIR-TEST", "1.2.250.1.213.1.4.9": "INS-NIA"}
FR_CORE_IDENTIFIER_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"


class DmpConnector:
    channel = "dmp"

    def __init__(
        self,
        *,
        url: str,
        upload_dir: Path,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 30.0,
        source_oid: str = HUB_DOCUMENT_OID_ROOT,
        allow_private_hosts: bool = False,
    ):
        self.url = require_https(url, "DMP_URL").rstrip("/") + "/"
        self.upload_dir = Path(upload_dir)
        self.timeout = timeout
        self.source_oid = source_oid
        self._session = https_session(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, allow_private_hosts=allow_private_hosts
        )

    @classmethod
    def from_config(cls, config: Mapping) -> "DmpConnector | None":
        """None when DMP_URL is not set: deposits then wait in the outbox."""
        if not config.get("DMP_URL"):
            return None
        return cls(
            url=config["DMP_URL"],
            upload_dir=Path(config.get("UPLOAD_DIR") or PROJECT_ROOT / "instance" / "uploads"),
            ca_file=config.get("DMP_CA_FILE") or None,
            cert_file=config.get("DMP_CERT_FILE") or None,
            key_file=config.get("DMP_KEY_FILE") or None,
            timeout=float(config.get("DMP_TIMEOUT_SECONDS") or 30),
            allow_private_hosts=allows_private_hosts(config),
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """One ITI-65 transaction for one document. The receipt is where the receiver keeps the
        DocumentReference (its location), or the document's id when it already had it."""
        package = DocumentPackage.from_payload(message.data)
        cda = self._stored_cda(package)
        bundle = provide_document_bundle(package.document, cda, source_oid=self.source_oid)
        response = post(
            self._session,
            self.url,
            what=WHAT,
            timeout=self.timeout,
            data=json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode(),
            headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
        )
        uid = f"urn:oid:{package.document.document_uid}"
        if response.status_code in ALREADY_THERE:
            return Receipt(id=f"déjà présent : {uid}")
        raise_for_status(response, what=WHAT)
        return Receipt(id=_document_location(response, bundle) or uid)

    def close(self) -> None:
        self._session.close()

    def _stored_cda(self, package: DocumentPackage) -> bytes:
        try:
            rendering = package.rendering("cda")
        except StopIteration:
            raise PermanentError("document sans rendu CDA : rien à déposer") from None
        try:
            content = read_stored(self.upload_dir, rendering.sha256)
        except (OSError, ValueError):
            # More likely a storage not mounted, or another UPLOAD_DIR, than a file gone: worth waiting for.
            raise TransientError("document CDA introuvable dans le stockage (UPLOAD_DIR à vérifier)") from None
        if len(content) != rendering.size or hashlib.sha256(content).hexdigest() != rendering.sha256:
            raise PermanentError("document CDA altéré : empreinte ou taille différente de celles enregistrées")
        return content


def provide_document_bundle(document: ClinicalDocument, cda: bytes, *, source_oid: str = HUB_DOCUMENT_OID_ROOT) -> dict:
    """The transaction Bundle: SubmissionSet (List), DocumentReference, Binary (the CDA), Patient and author
    Practitioner. Refuses, in French, what the DMP would refuse: a patient without a qualified INS, an
    author without RPPS."""
    patient = _patient(document)
    author = _practitioner(document.author)
    urls = {name: _urn(document.document_uid, name) for name in ("list", "doc", "binary", "patient", "author")}
    doc_ref = _document_reference(document, cda, urls)
    entries = [
        _entry(urls["list"], _submission_set(document, urls, source_oid), "List"),
        _entry(urls["doc"], doc_ref, "DocumentReference", if_none_exist=f"identifier=urn:oid:{document.document_uid}"),
        _entry(urls["binary"], {"resourceType": "Binary", "contentType": "text/xml", "data": _b64(cda)}, "Binary"),
        _entry(urls["patient"], patient, "Patient", if_none_exist=_identifier_query(patient)),
        _entry(urls["author"], author, "Practitioner", if_none_exist=_identifier_query(author)),
    ]
    return {"resourceType": "Bundle", "meta": {"profile": PROFILES["Bundle"]}, "type": "transaction", "entry": entries}


def _submission_set(document: ClinicalDocument, urls: dict, source_oid: str) -> dict:
    return {
        "resourceType": "List",
        "meta": {"profile": PROFILES["List"]},
        "extension": [{"url": SOURCE_ID_EXTENSION, "valueIdentifier": {"value": f"urn:oid:{source_oid}"}}],
        "identifier": [
            {"use": "official", "system": RFC3986, "value": f"urn:oid:{submission_set_uid(document.document_uid)}"},
            {"use": "usual", "system": RFC3986, "value": urls["list"]},
        ],
        "status": "current",
        "mode": "working",
        "title": document.title,
        "code": {"coding": [SUBMISSION_SET_CODE]},
        "subject": {"reference": urls["patient"]},
        "source": {"reference": urls["author"]},
        "date": _instant(document.created_at),
        "entry": [{"item": {"reference": urls["doc"]}}],
    }


def _document_reference(document: ClinicalDocument, cda: bytes, urls: dict) -> dict:
    class_code, class_label = CLASSES.get(document.loinc, DEFAULT_CLASS)
    resource = {
        "resourceType": "DocumentReference",
        "meta": {"profile": PROFILES["DocumentReference"]},
        "masterIdentifier": {"system": RFC3986, "value": f"urn:oid:{document.document_uid}"},
        "identifier": [{"use": "official", "system": RFC3986, "value": urls["doc"]}],
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": document.loinc, "display": document.title}]},
        "category": [{"coding": [{"system": CLASS_SYSTEM, "code": class_code, "display": class_label}]}],
        "subject": {"reference": urls["patient"]},
        "date": _instant(document.created_at),
        "author": [{"reference": urls["author"]}],
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": document.confidentiality}]}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/xml",
                    "language": "fr-FR",
                    "url": urls["binary"],
                    "size": len(cda),
                    "hash": _b64(hashlib.sha1(cda).digest()),  # noqa: S324 -- the hash MHD defines, not a signature
                    "title": document.title,
                    "creation": _instant(document.created_at),
                },
                "format": FORMAT,
            }
        ],
    }
    if document.replaces_uid:
        replaced = {"system": RFC3986, "value": f"urn:oid:{document.replaces_uid}"}
        resource["relatesTo"] = [{"code": "replaces", "target": {"identifier": replaced}}]
    period = _period(document)
    if period:
        resource["context"] = {"period": period}
    return resource


def _patient(document: ClinicalDocument) -> dict:
    identity = document.patient
    if identity.identity_status != "QUAL" or not identity.ins or not identity.ins_oid:
        raise PermanentError(
            "dépôt DMP refusé : l'identité du patient n'est pas qualifiée (INS absent) ; qualifiez l'identité"
        )
    ins_type = INS_TYPES.get(identity.ins_oid, "INS-NIR")
    given = [name for name in (identity.birth_given_names or identity.first_birth_given_name).split() if name]
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": FR_CORE_IDENTIFIER_TYPES, "code": ins_type}]},
                "system": f"urn:oid:{identity.ins_oid}",
                "value": identity.ins,
            }
        ],
        "name": [{"use": "official", "family": identity.birth_name, "given": given}],
        "gender": {"M": "male", "F": "female"}.get(identity.sex, "unknown"),
        "birthDate": identity.birth_date.isoformat(),
    }


def _practitioner(author: ProfessionalIdentity) -> dict:
    if not author.idnat_ps:
        raise PermanentError("dépôt DMP refusé : l'auteur du document n'a pas de RPPS")
    return {
        "resourceType": "Practitioner",
        "identifier": [
            {
                "type": {"coding": [{"system": "http://interopsante.org/CodeSystem/v2-0203", "code": "IDNPS"}]},
                "system": f"urn:oid:{RPPS_OID}",
                "value": author.idnat_ps,
            }
        ],
        "name": [{"family": author.last_name, "given": [author.first_name]}],
    }


def submission_set_uid(document_uid: str) -> str:
    """Stable for a document, so a re-sent submission is the same submission; under the UUID arc 2.25."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, 'submission-set:' + document_uid).int}"


def _entry(full_url: str, resource: dict, resource_type: str, *, if_none_exist: str | None = None) -> dict:
    request = {"method": "POST", "url": resource_type}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _identifier_query(resource: dict) -> str:
    identifier = resource["identifier"][0]
    return f"identifier={identifier['system']}|{identifier['value']}"


def _urn(document_uid: str, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{name}:{document_uid}')}"


def _period(document: ClinicalDocument) -> dict:
    period = {}
    if document.service_started_at:
        period["start"] = _instant(document.service_started_at)
    if document.service_ended_at:
        period["end"] = _instant(document.service_ended_at)
    return period


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def _document_location(response: requests.Response, bundle: dict) -> str | None:
    """Where the receiver keeps the DocumentReference: its entry's location in the transaction-response
    (entries answer in the request's order), else the Location header."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("resourceType") == "Bundle":
        index = next(i for i, e in enumerate(bundle["entry"]) if e["request"]["url"] == "DocumentReference")
        entries = answer.get("entry") or []
        if index < len(entries):
            location = (entries[index].get("response") or {}).get("location")
            if location:
                return str(location)
    return response.headers.get("Location")
