"""The CDA R2 level-1 rendering of a clinical document: the CI-SIS header (ANS volet "Structuration minimale
des documents de santé") around the PDF rendering carried as a base64 `nonXMLBody`.

`build_cda` gives the same bytes for the same document and PDF, so the hash stored at signing matches every
later attempt to send it. `check_cda` lists, in French, what a document breaks among the structural rules
written down below; the tests use it on every rendering they make.
"""

import base64
import binascii
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo

from hub.documents.clinical import ClinicalDocument, PatientIdentity, ProfessionalIdentity
from hub.identifiers import check_ins_matricule, check_rpps
from hub.xmltext import holds_non_xml, xml_text

V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

TYPE_ID_ROOT = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION = "POCD_HD000040"
TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CI_SIS = "1.2.250.1.213.1.1.1.1"  # conformity to the CI-SIS "Structuration minimale" header
# A body that is a PDF rather than structured sections: the IHE XDS-SD content module, the one whose
# formatCode (urn:ihe:iti:xds-sd:pdf:2008) the DMP and MSSanté metadata give a level-1 PDF document.
TEMPLATE_LEVEL_1 = "1.3.6.1.4.1.19376.1.2.20"
LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"
RPPS_IDNAT_ROOT = "1.2.250.1.71.4.2.1"  # IdNat_PS: "8" + RPPS
FINESS_IDNAT_ROOT = "1.2.250.1.71.4.2.2"  # IdNat_Struct: "1" + FINESS
PROFESSION_CODES = "1.2.250.1.71.1.2.7"  # TRE_G15 ProfessionSante
INS_OIDS = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"})
# The hub's test arcs for ids that are not OIDs themselves (patients, structures without FINESS).
HUB_PATIENT_OID_ROOT = "1.2.250.1.999.1.2"
HUB_ORGANISATION_OID_ROOT = "1.2.250.1.999.1.3"
DOCUMENT_TYPES = {
    "85208-7": "Compte rendu de téléconsultation",
    "11506-3": "Compte rendu de télésoin",
    "75496-0": "Demande de téléexpertise",
    "96349-6": "Lettre d'adressage",
}
# TRE_G15 codes by the start of the hub's French profession labels.
PROFESSIONS = (
    ("médecin", "10", "Médecin"),
    ("pharmacien", "21", "Pharmacien"),
    ("chirurgien-dentiste", "40", "Chirurgien-Dentiste"),
    ("sage-femme", "50", "Sage-Femme"),
    ("infirmier", "60", "Infirmier"),
    ("masseur-kinésithérapeute", "70", "Masseur-Kinésithérapeute"),
    ("pédicure-podologue", "80", "Pédicure-Podologue"),
    ("orthophoniste", "91", "Orthophoniste"),
    ("orthoptiste", "92", "Orthoptiste"),
)
GENDERS = {"F": "F", "M": "M", "I": "UN"}
OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")

ET.register_namespace("", V3)
ET.register_namespace("xsi", XSI)


def build_cda(doc: ClinicalDocument, pdf: bytes, *, zone: str) -> bytes:
    """The CDA R2 level-1 XML (UTF-8) of `doc` with `pdf` as its body, times in `zone`; identical bytes for
    identical input."""
    time = partial(cda_time, zone=zone)
    root = ET.Element(_v3("ClinicalDocument"))
    _header(root, doc, time)
    _record_target(root, doc.patient)
    _author(root, doc, time)
    _custodian(root, doc)
    _legal_authenticator(root, doc, time)
    _documentation_of(root, doc, time)
    _related_document(root, doc)
    _body(root, pdf)
    ET.indent(root, space="  ")
    xml = _serialised(root)
    # Rare: a name or a title with characters XML forbids, written again without them. ElementTree writes a lone
    # surrogate as a character reference, &#55296; to &#57343;, and no other of its references starts with a 5.
    # Only the header is looked at: the body, last, is base64 and nine tenths of the bytes (looking at it all cost
    # ~15 % of build_cda, the header 2 %; bench/README.md).
    header = xml[: xml.find(b"<nonXMLBody")]
    if holds_non_xml(header) or b"&#5" in header:
        for element in root.iter():
            if element.text:
                element.text = xml_text(element.text)
            element.attrib = {name: xml_text(value) for name, value in element.attrib.items()}
        xml = _serialised(root)
    return xml


def _serialised(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _v3(tag: str) -> str:
    return f"{{{V3}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str | None) -> ET.Element:
    element = ET.SubElement(parent, _v3(tag), {name: value for name, value in attributes.items() if value})
    if text is not None:
        element.text = text
    return element


def cda_time(value, *, zone: str) -> str:
    """`20261207140000+0100`: the wall time in the territory's zone with its offset, as the CI-SIS header
    wants."""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y%m%d%H%M%S%z")


def _header(root: ET.Element, doc: ClinicalDocument, time: Callable[[dt.datetime], str]) -> None:
    # xsi is declared for the validators that expect it on the root, though the header uses no xsi:type.
    root.set(f"{{{XSI}}}schemaLocation", f"{V3} CDA.xsd")
    _sub(root, "realmCode", code="FR")
    _sub(root, "typeId", root=TYPE_ID_ROOT, extension=TYPE_ID_EXTENSION)
    _sub(root, "templateId", root=TEMPLATE_HL7_FRANCE)
    _sub(root, "templateId", root=TEMPLATE_CI_SIS)
    _sub(root, "templateId", root=TEMPLATE_LEVEL_1)
    _sub(root, "id", root=doc.document_uid)
    _sub(root, "code", code=doc.loinc, codeSystem=LOINC, codeSystemName="LOINC", displayName=_type_label(doc))
    _sub(root, "title", doc.title)
    _sub(root, "effectiveTime", value=time(doc.created_at))
    _sub(root, "confidentialityCode", code=doc.confidentiality, codeSystem=CONFIDENTIALITY)
    _sub(root, "languageCode", code="fr-FR")
    _sub(root, "setId", root=set_id(doc))
    _sub(root, "versionNumber", value=str(doc.version))


def _type_label(doc: ClinicalDocument) -> str:
    return DOCUMENT_TYPES.get(doc.loinc, doc.title)


def set_id(doc: ClinicalDocument) -> str:
    """The id shared by a document's versions: the first version's uid (set_id), which for a first
    correction is also the one it replaces."""
    return doc.set_id or doc.replaces_uid or doc.document_uid


def _record_target(root: ET.Element, patient: PatientIdentity) -> None:
    role = _sub(_sub(root, "recordTarget"), "patientRole")
    if patient.ins:  # set only for a QUAL identity: the INS never travels otherwise
        _sub(role, "id", root=patient.ins_oid, extension=patient.ins)
    _identifier(role, patient.local_id, HUB_PATIENT_OID_ROOT)
    person = _sub(role, "patient")
    _patient_name(person, patient)
    _sub(person, "administrativeGenderCode", code=GENDERS.get(patient.sex, "UN"), codeSystem=ADMINISTRATIVE_GENDER)
    _sub(person, "birthTime", value=patient.birth_date.strftime("%Y%m%d"))
    address = _sub(_sub(_sub(person, "birthplace"), "place"), "addr")
    _sub(address, "county", patient.birth_place_insee)


def _identifier(parent: ET.Element, value: str, arc: str) -> None:
    """An id already shaped as an OID is its own root; anything else is an extension under the hub's arc."""
    if OID.fullmatch(value):
        _sub(parent, "id", root=value)
    else:
        _sub(parent, "id", root=arc, extension=value)


def _patient_name(person: ET.Element, patient: PatientIdentity) -> None:
    """CI-SIS qualifiers: family BR the birth name, SP the used name; given BR the first birth given name,
    unqualified the birth given names in full, CL the used first name."""
    name = _sub(person, "name")
    _sub(name, "family", patient.birth_name, qualifier="BR")
    if patient.used_last_name:
        _sub(name, "family", patient.used_last_name, qualifier="SP")
    _sub(name, "given", patient.first_birth_given_name, qualifier="BR")
    if patient.birth_given_names:
        _sub(name, "given", patient.birth_given_names)
    if patient.used_first_name:
        _sub(name, "given", patient.used_first_name, qualifier="CL")


def _author(root: ET.Element, doc: ClinicalDocument, time: Callable[[dt.datetime], str]) -> None:
    author = _sub(root, "author")
    _sub(author, "time", value=time(doc.created_at))
    assigned = _sub(author, "assignedAuthor")
    _professional(assigned, doc.author, person_tag="assignedPerson")
    _organisation(_sub(assigned, "representedOrganization"), doc)


def _professional(entity: ET.Element, professional: ProfessionalIdentity, *, person_tag: str) -> None:
    if professional.idnat_ps:
        _sub(entity, "id", root=RPPS_IDNAT_ROOT, extension=professional.idnat_ps)
    else:
        _sub(entity, "id", nullFlavor="UNK")
    profession = profession_code(professional.profession)
    if profession:
        _sub(entity, "code", code=profession[0], codeSystem=PROFESSION_CODES, displayName=profession[1])
    if professional.mssante_address:
        _sub(entity, "telecom", value=f"mailto:{professional.mssante_address}")
    name = _sub(_sub(entity, person_tag), "name")
    _sub(name, "given", professional.first_name)
    _sub(name, "family", professional.last_name)


def profession_code(label: str) -> tuple[str, str] | None:
    """The TRE_G15 code and label of a French profession label, or None when the table has no match."""
    lowered = label.casefold()
    return next(((code, name) for start, code, name in PROFESSIONS if lowered.startswith(start)), None)


def _organisation(organisation: ET.Element, doc: ClinicalDocument) -> None:
    custodian = doc.custodian
    if custodian.finess:
        _sub(organisation, "id", root=FINESS_IDNAT_ROOT, extension=f"1{custodian.finess}")
    else:
        _identifier(organisation, custodian.local_id or "0", HUB_ORGANISATION_OID_ROOT)
    _sub(organisation, "name", custodian.name)


def _custodian(root: ET.Element, doc: ClinicalDocument) -> None:
    assigned = _sub(_sub(root, "custodian"), "assignedCustodian")
    _organisation(_sub(assigned, "representedCustodianOrganization"), doc)


def _legal_authenticator(root: ET.Element, doc: ClinicalDocument, time: Callable[[dt.datetime], str]) -> None:
    authenticator = _sub(root, "legalAuthenticator")
    _sub(authenticator, "time", value=time(doc.created_at))
    _sub(authenticator, "signatureCode", code="S")
    _professional(_sub(authenticator, "assignedEntity"), doc.author, person_tag="assignedPerson")


def _documentation_of(root: ET.Element, doc: ClinicalDocument, time: Callable[[dt.datetime], str]) -> None:
    event = _sub(_sub(root, "documentationOf"), "serviceEvent")
    started = doc.service_started_at or doc.created_at
    period = _sub(event, "effectiveTime")
    _sub(period, "low", value=time(started))
    if doc.service_ended_at:
        _sub(period, "high", value=time(doc.service_ended_at))
    _performer(event, doc.author, kind="PRF", at=time(started))
    for participant in doc.participants:
        _performer(event, participant, kind="SPRF", at=time(started))


def _performer(event: ET.Element, professional: ProfessionalIdentity, *, kind: str, at: str) -> None:
    performer = _sub(event, "performer", typeCode=kind)
    _sub(_sub(performer, "time"), "low", value=at)
    _professional(_sub(performer, "assignedEntity"), professional, person_tag="assignedPerson")


def _related_document(root: ET.Element, doc: ClinicalDocument) -> None:
    if doc.replaces_uid:
        parent = _sub(_sub(root, "relatedDocument", typeCode="RPLC"), "parentDocument")
        _sub(parent, "id", root=doc.replaces_uid)


def _body(root: ET.Element, pdf: bytes) -> None:
    body = _sub(_sub(root, "component"), "nonXMLBody")
    _sub(body, "text", base64.b64encode(pdf).decode("ascii"), mediaType="application/pdf", representation="B64")


# --- Structural rules -------------------------------------------------------------------------------------

NS = {"v3": V3}
RULES = """What check_cda verifies (CDA R2 level 1, CI-SIS header):
- well-formed UTF-8 XML whose root is ClinicalDocument in the urn:hl7-org:v3 namespace, xsi declared;
- realmCode FR, typeId 2.16.840.1.113883.1.3 / POCD_HD000040, the CI-SIS templateId;
- id with an OID root, code with a LOINC code of a known type, non-empty title, effectiveTime with seconds and
  offset, confidentialityCode in 2.16.840.1.113883.5.25, languageCode fr-FR, setId, versionNumber >= 1;
- one recordTarget/patientRole: an INS id (INS OID root, 15-character matricule) only for a QUAL identity,
  at least one id, a birth name (family BR), the first birth given name (given BR), a gender, an 8-digit
  birthTime and a 5-character INSEE birthplace;
- author with a time and an assignedAuthor id under 1.2.250.1.71.4.2.1 valued "8" + 11 digits, a name;
- custodian/assignedCustodian/representedCustodianOrganization with an id;
- legalAuthenticator with time, signatureCode S and an IdNat_PS id;
- relatedDocument, if any, typed RPLC with a parentDocument id, and then a versionNumber above 1;
- component/nonXMLBody/text application/pdf in B64 that decodes to a PDF;
- the children of the elements the hub writes come in the order of the CDA R2 schema (POCD_MT000040)
  sequences, and are elements that schema allows there."""

# The CDA R2 schema's sequences (POCD_MT000040.xsd) for the elements build_cda writes, less the infrastructure
# elements (realmCode, typeId, templateId) that open every one of them.
_INFRASTRUCTURE = ("realmCode", "typeId", "templateId")
_ENTITY = (*_INFRASTRUCTURE, "id", "code", "addr", "telecom", "assignedPerson", "representedOrganization")
SEQUENCES = {
    "ClinicalDocument": (
        *_INFRASTRUCTURE, "id", "code", "title", "effectiveTime", "confidentialityCode", "languageCode", "setId",
        "versionNumber", "copyTime", "recordTarget", "author", "dataEnterer", "informant", "custodian",
        "informationRecipient", "legalAuthenticator", "authenticator", "participant", "inFulfillmentOf",
        "documentationOf", "relatedDocument", "authorization", "componentOf", "component",
    ),
    "recordTarget": (*_INFRASTRUCTURE, "patientRole"),
    "patientRole": (*_INFRASTRUCTURE, "id", "addr", "telecom", "patient", "providerOrganization"),
    "patient": (
        *_INFRASTRUCTURE, "id", "name", "administrativeGenderCode", "birthTime", "maritalStatusCode",
        "religiousAffiliationCode", "raceCode", "ethnicGroupCode", "guardian", "birthplace", "languageCommunication",
    ),
    "birthplace": (*_INFRASTRUCTURE, "place"),
    "place": (*_INFRASTRUCTURE, "name", "addr"),
    "author": (*_INFRASTRUCTURE, "functionCode", "time", "assignedAuthor"),
    "assignedAuthor": (
        *_INFRASTRUCTURE, "id", "code", "addr", "telecom", "assignedPerson", "assignedAuthoringDevice",
        "representedOrganization",
    ),
    "assignedPerson": (*_INFRASTRUCTURE, "name"),
    "representedOrganization": (*_INFRASTRUCTURE, "id", "name", "telecom", "addr", "standardIndustryClassCode"),
    "custodian": (*_INFRASTRUCTURE, "assignedCustodian"),
    "assignedCustodian": (*_INFRASTRUCTURE, "representedCustodianOrganization"),
    "representedCustodianOrganization": (*_INFRASTRUCTURE, "id", "name", "telecom", "addr"),
    "legalAuthenticator": (*_INFRASTRUCTURE, "time", "signatureCode", "assignedEntity"),
    "assignedEntity": _ENTITY,
    "documentationOf": (*_INFRASTRUCTURE, "serviceEvent"),
    "serviceEvent": (*_INFRASTRUCTURE, "id", "code", "effectiveTime", "performer"),
    "performer": (*_INFRASTRUCTURE, "functionCode", "time", "assignedEntity"),
    "relatedDocument": (*_INFRASTRUCTURE, "parentDocument"),
    "parentDocument": (*_INFRASTRUCTURE, "id", "code", "text", "setId", "versionNumber"),
    "component": (*_INFRASTRUCTURE, "nonXMLBody", "structuredBody"),
    "nonXMLBody": (*_INFRASTRUCTURE, "text", "confidentialityCode", "languageCode"),
}  # fmt: skip


def check_cda(xml: bytes, *, identity_status: str | None = None) -> list[str]:
    """What the document breaks among RULES; empty when it follows them. With `identity_status`, the INS
    must be present exactly when it is QUAL."""
    # The documents checked are the hub's own renderings, never XML received from outside.
    try:
        namespaces = {uri for _, (_, uri) in ET.iterparse(io.BytesIO(xml), events=("start-ns",))}  # noqa: S314
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as error:
        return [f"XML mal formé : {error}"]
    if root.tag != _v3("ClinicalDocument"):
        return [f"Élément racine inattendu : {root.tag} (ClinicalDocument de urn:hl7-org:v3 attendu)."]
    problems = [] if XSI in namespaces else ["Espace de noms xsi non déclaré."]
    checks = (_check_header, _check_patient, _check_author, _check_custodian, _check_related, _check_body, _check_order)
    for check in checks:
        problems += check(root)
    if identity_status is not None:
        problems += _check_ins_status(root, identity_status)
    return problems


def _attr(root: ET.Element, path: str, name: str) -> str | None:
    element = root.find(path, NS)
    return None if element is None else element.get(name)


def _expect(root: ET.Element, path: str, name: str, expected: str, message: str) -> list[str]:
    found = _attr(root, path, name)
    return [] if found == expected else [f"{message} (trouvé : {found or 'absent'})."]


def _check_header(root: ET.Element) -> list[str]:
    problems = _expect(root, "v3:realmCode", "code", "FR", "realmCode doit valoir FR")
    problems += _expect(root, "v3:typeId", "root", TYPE_ID_ROOT, "typeId/@root incorrect")
    problems += _expect(root, "v3:typeId", "extension", TYPE_ID_EXTENSION, "typeId/@extension incorrect")
    templates = {element.get("root") for element in root.findall("v3:templateId", NS)}
    if TEMPLATE_CI_SIS not in templates:
        problems.append(f"templateId CI-SIS {TEMPLATE_CI_SIS} absent.")
    if not OID.fullmatch(_attr(root, "v3:id", "root") or ""):
        problems.append("id du document absent ou non conforme à un OID.")
    problems += _expect(root, "v3:code", "codeSystem", LOINC, "code du document hors LOINC")
    if _attr(root, "v3:code", "code") not in DOCUMENT_TYPES:
        problems.append(f"Type de document inconnu : {_attr(root, 'v3:code', 'code')}.")
    if not (root.findtext("v3:title", namespaces=NS) or "").strip():
        problems.append("title absent ou vide.")
    if not re.fullmatch(r"\d{14}[+-]\d{4}", _attr(root, "v3:effectiveTime", "value") or ""):
        problems.append("effectiveTime doit être AAAAMMJJHHMMSS suivi du décalage horaire.")
    problems += _expect(root, "v3:confidentialityCode", "codeSystem", CONFIDENTIALITY, "confidentialityCode")
    problems += _expect(root, "v3:languageCode", "code", "fr-FR", "languageCode doit valoir fr-FR")
    if not _attr(root, "v3:setId", "root"):
        problems.append("setId absent.")
    if not (_attr(root, "v3:versionNumber", "value") or "").isdigit():
        problems.append("versionNumber absent ou non entier.")
    return problems


def _patient_role(root: ET.Element) -> ET.Element | None:
    roles = root.findall("v3:recordTarget/v3:patientRole", NS)
    return roles[0] if len(roles) == 1 else None


def _ins_ids(role: ET.Element) -> list[ET.Element]:
    return [element for element in role.findall("v3:id", NS) if element.get("root") in INS_OIDS]


def _check_patient(root: ET.Element) -> list[str]:
    role = _patient_role(root)
    if role is None:
        return ["Il faut exactement un recordTarget/patientRole."]
    problems = [] if role.findall("v3:id", NS) else ["patientRole sans identifiant."]
    for ins in _ins_ids(role):
        try:
            check_ins_matricule(ins.get("extension") or "")
        except ValueError as error:
            problems.append(f"INS : {error}")
    patient = role.find("v3:patient", NS)
    if patient is None:
        return [*problems, "patientRole/patient absent."]
    for path, label in (
        ("v3:name/v3:family[@qualifier='BR']", "nom de naissance (family BR)"),
        ("v3:name/v3:given[@qualifier='BR']", "premier prénom de naissance (given BR)"),
        ("v3:administrativeGenderCode", "sexe (administrativeGenderCode)"),
        ("v3:birthTime", "date de naissance (birthTime)"),
    ):
        if patient.find(path, NS) is None:
            problems.append(f"Patient : {label} absent.")
    if not re.fullmatch(r"\d{8}", _attr(patient, "v3:birthTime", "value") or ""):
        problems.append("Patient : birthTime doit être AAAAMMJJ.")
    county = patient.findtext("v3:birthplace/v3:place/v3:addr/v3:county", namespaces=NS) or ""
    if not re.fullmatch(r"[0-9][0-9AB][0-9]{3}", county):
        problems.append("Patient : code INSEE du lieu de naissance absent ou mal formé.")
    return problems


def _check_ins_status(root: ET.Element, identity_status: str) -> list[str]:
    role = _patient_role(root)
    has_ins = role is not None and bool(_ins_ids(role))
    if identity_status == "QUAL" and not has_ins:
        return ["Identité qualifiée mais INS absent du document."]
    if identity_status != "QUAL" and has_ins:
        return [f"INS présent alors que l'identité n'est pas qualifiée ({identity_status})."]
    return []


def _check_idnat_ps(entity: ET.Element | None, who: str) -> list[str]:
    if entity is None:
        return [f"{who} : entité absente."]
    ids = [element for element in entity.findall("v3:id", NS) if element.get("root") == RPPS_IDNAT_ROOT]
    idnat = (ids[0].get("extension") or "") if ids else ""
    if not re.fullmatch(r"8\d{11}", idnat):
        return [f"{who} : identifiant IdNat_PS (8 + RPPS à 11 chiffres, racine {RPPS_IDNAT_ROOT}) absent ou faux."]
    try:
        check_rpps(idnat[1:])
    except ValueError as error:
        return [f"{who} : {error}"]
    return []


def _check_author(root: ET.Element) -> list[str]:
    authors = root.findall("v3:author", NS)
    if not authors:
        return ["author absent."]
    problems = []
    for author in authors:
        if not _attr(author, "v3:time", "value"):
            problems.append("author/time absent.")
        problems += _check_idnat_ps(author.find("v3:assignedAuthor", NS), "Auteur")
        if author.find("v3:assignedAuthor/v3:assignedPerson/v3:name/v3:family", NS) is None:
            problems.append("Auteur : nom absent.")
    authenticator = root.find("v3:legalAuthenticator", NS)
    if authenticator is None:
        return [*problems, "legalAuthenticator absent."]
    if _attr(authenticator, "v3:signatureCode", "code") != "S" or not _attr(authenticator, "v3:time", "value"):
        problems.append("legalAuthenticator : time et signatureCode S requis.")
    return problems + _check_idnat_ps(authenticator.find("v3:assignedEntity", NS), "Responsable légal")


def _check_custodian(root: ET.Element) -> list[str]:
    path = "v3:custodian/v3:assignedCustodian/v3:representedCustodianOrganization/v3:id"
    return [] if root.find(path, NS) is not None else ["custodian sans organisation identifiée."]


def _check_related(root: ET.Element) -> list[str]:
    problems = []
    for related in root.findall("v3:relatedDocument", NS):
        if related.get("typeCode") != "RPLC":
            problems.append(f"relatedDocument de type {related.get('typeCode')} (RPLC attendu).")
        if not _attr(related, "v3:parentDocument/v3:id", "root"):
            problems.append("relatedDocument sans parentDocument/id.")
        version = _attr(root, "v3:versionNumber", "value") or ""
        if not (version.isdigit() and int(version) > 1):
            problems.append("Un document qui en remplace un autre doit avoir un versionNumber supérieur à 1.")
    return problems


def _check_body(root: ET.Element) -> list[str]:
    text = root.find("v3:component/v3:nonXMLBody/v3:text", NS)
    if text is None:
        return ["component/nonXMLBody/text absent."]
    if text.get("mediaType") != "application/pdf" or text.get("representation") != "B64":
        return ["nonXMLBody/text doit être application/pdf en B64."]
    try:
        content = base64.b64decode("".join((text.text or "").split()), validate=True)
    except binascii.Error:
        return ["nonXMLBody/text n'est pas du base64 valide."]
    return [] if content.startswith(b"%PDF-") else ["nonXMLBody/text ne contient pas un PDF."]


def _check_order(root: ET.Element) -> list[str]:
    problems = []
    for element in root.iter():
        sequence = SEQUENCES.get(_local(element.tag))
        if sequence is not None:
            problems += _check_children(element, sequence)
    return problems


def _check_children(element: ET.Element, sequence: tuple[str, ...]) -> list[str]:
    position = 0
    for child in element:
        name = _local(child.tag)
        if child.tag != _v3(name) or name not in sequence:
            return [f"{_local(element.tag)} : élément {name} non prévu par le schéma CDA R2 à cet endroit."]
        if sequence.index(name) < position:
            return [f"{_local(element.tag)} : {name} est hors de l'ordre du schéma CDA R2."]
        position = sequence.index(name)
    return []


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
