"""The CDA R2 level-1 rendering. No registry package we can install ships the HL7 CDA R2 schema (CDA.xsd,
POCD_MT000040.xsd), so the documents are checked against the structural rules written down in
`hub.documents.cda.RULES` (check_cda), including the schema's element order for what the hub writes, and
their fields are read back here one by one."""

import base64
import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from defusedxml import ElementTree as SafeET

from hub.documents.cda import build_cda, check_cda
from hub.documents.pdf import render_pdf
from tests import ZONE
from tests.documents.test_pdf import (
    CARDIOLOGIST_RPPS,
    NIR,
    NURSE_RPPS,
    clinical_document,
    patient_without_ins,
)

NS = {"v3": "urn:hl7-org:v3"}
INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")


def cda(document=None) -> bytes:
    document = document or clinical_document()
    return build_cda(document, render_pdf(document, zone=ZONE), zone=ZONE)


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 (the hub's own output)


def attr(root: ET.Element, path: str, name: str) -> str | None:
    return root.find(path, NS).get(name)


def test_the_header_follows_the_ci_sis_model():
    xml = cda()
    root = parse(xml)

    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' in xml
    assert attr(root, "v3:realmCode", "code") == "FR"
    assert (attr(root, "v3:typeId", "root"), attr(root, "v3:typeId", "extension")) == (
        "2.16.840.1.113883.1.3",
        "POCD_HD000040",
    )
    assert "1.2.250.1.213.1.1.1.1" in [t.get("root") for t in root.findall("v3:templateId", NS)]
    assert root.find("v3:id", NS).attrib == {"root": "1.2.250.1.999.1.1.17.1"}
    assert root.find("v3:code", NS).attrib == {
        "code": "85208-7",
        "codeSystem": "2.16.840.1.113883.6.1",
        "codeSystemName": "LOINC",
        "displayName": "Compte rendu de téléconsultation",
    }
    assert root.findtext("v3:title", namespaces=NS) == "Compte rendu de téléconsultation"
    assert attr(root, "v3:effectiveTime", "value") == "20261207153000+0100"
    assert root.find("v3:confidentialityCode", NS).attrib == {"code": "N", "codeSystem": "2.16.840.1.113883.5.25"}
    assert attr(root, "v3:languageCode", "code") == "fr-FR"
    assert attr(root, "v3:setId", "root") == "1.2.250.1.999.1.1.17.1"
    assert attr(root, "v3:versionNumber", "value") == "1"
    assert root.find("v3:relatedDocument", NS) is None
    assert check_cda(xml, identity_status="QUAL") == []


@pytest.mark.parametrize(
    ("loinc", "title"),
    [
        ("85208-7", "Compte rendu de téléconsultation"),
        ("11506-3", "Compte rendu de télésoin"),
        ("75496-0", "Demande de téléexpertise"),
    ],
)
def test_each_document_type_has_its_loinc_code(loinc, title):
    xml = cda(clinical_document(loinc=loinc, title=title))

    code = parse(xml).find("v3:code", NS)
    assert (code.get("code"), code.get("displayName")) == (loinc, title)
    assert check_cda(xml) == []


def test_times_are_paris_wall_times_with_their_offset():
    summer = clinical_document(
        created_at=dt.datetime(2027, 7, 5, 8, 15, tzinfo=dt.UTC),
        service_started_at=dt.datetime(2027, 7, 5, 7, 0, tzinfo=dt.UTC),
        service_ended_at=None,
    )

    root = parse(cda(summer))

    assert attr(root, "v3:effectiveTime", "value") == "20270705101500+0200"
    period = root.find("v3:documentationOf/v3:serviceEvent/v3:effectiveTime", NS)
    assert attr(period, "v3:low", "value") == "20270705090000+0200"
    assert period.find("v3:high", NS) is None


def test_a_qualified_identity_carries_the_ins_and_the_strict_traits():
    role = parse(cda()).find("v3:recordTarget/v3:patientRole", NS)

    ids = [element.attrib for element in role.findall("v3:id", NS)]
    assert ids == [
        {"root": "1.2.250.1.213.1.4.8", "extension": NIR},
        {"root": "1.2.250.1.999.1.2", "extension": "4217"},
    ]
    patient = role.find("v3:patient", NS)
    assert patient.findtext("v3:name/v3:family[@qualifier='BR']", namespaces=NS) == "LEFÈVRE-ŒUVRARD"
    assert patient.findtext("v3:name/v3:family[@qualifier='SP']", namespaces=NS) == "MARTIN"
    assert patient.findtext("v3:name/v3:given[@qualifier='BR']", namespaces=NS) == "FRANÇOISE"
    given_names = [given.text for given in patient.findall("v3:name/v3:given", NS) if "qualifier" not in given.attrib]
    assert given_names == ["FRANÇOISE MARIE"]
    assert patient.findtext("v3:name/v3:given[@qualifier='CL']", namespaces=NS) == "Fanny"
    assert patient.find("v3:administrativeGenderCode", NS).attrib == {
        "code": "F",
        "codeSystem": "2.16.840.1.113883.5.1",
    }
    assert attr(patient, "v3:birthTime", "value") == "19480301"
    assert patient.findtext("v3:birthplace/v3:place/v3:addr/v3:county", namespaces=NS) == "24520"


@pytest.mark.parametrize("status", ["PROV", "VALI", "RECUP"])
def test_an_identity_not_qualified_never_carries_the_ins(status):
    xml = cda(clinical_document(patient=patient_without_ins(status)))

    role = parse(xml).find("v3:recordTarget/v3:patientRole", NS)
    assert [element.attrib for element in role.findall("v3:id", NS)] == [
        {"root": "1.2.250.1.999.1.2", "extension": "4217"}
    ]
    assert NIR.encode() not in xml and not any(oid.encode() in xml for oid in INS_OIDS)
    assert check_cda(xml, identity_status=status) == []


def test_the_check_refuses_an_ins_on_an_identity_not_qualified_and_its_absence_on_a_qualified_one():
    assert check_cda(cda(), identity_status="PROV") == ["INS présent alors que l'identité n'est pas qualifiée (PROV)."]
    without = cda(clinical_document(patient=patient_without_ins("VALI")))
    assert check_cda(without, identity_status="QUAL") == ["Identité qualifiée mais INS absent du document."]


def test_the_author_is_named_by_idnat_ps_and_is_the_legal_authenticator():
    root = parse(cda())

    author = root.find("v3:author", NS)
    assert attr(author, "v3:time", "value") == "20261207153000+0100"
    assigned = author.find("v3:assignedAuthor", NS)
    assert assigned.find("v3:id", NS).attrib == {"root": "1.2.250.1.71.4.2.1", "extension": f"8{CARDIOLOGIST_RPPS}"}
    assert attr(assigned, "v3:code", "code") == "10"
    assert attr(assigned, "v3:telecom", "value") == "mailto:helene.dupre@medecin.mssante.fr"
    assert assigned.findtext("v3:assignedPerson/v3:name/v3:family", namespaces=NS) == "Dupré"
    assert assigned.findtext("v3:assignedPerson/v3:name/v3:given", namespaces=NS) == "Hélène"
    authenticator = root.find("v3:legalAuthenticator", NS)
    assert attr(authenticator, "v3:signatureCode", "code") == "S"
    assert attr(authenticator, "v3:assignedEntity/v3:id", "extension") == f"8{CARDIOLOGIST_RPPS}"
    custodian = root.find("v3:custodian/v3:assignedCustodian/v3:representedCustodianOrganization", NS)
    assert custodian.find("v3:id", NS).attrib == {"root": "1.2.250.1.71.4.2.2", "extension": "1240012345"}
    assert custodian.findtext("v3:name", namespaces=NS) == "CPTS du Pays de Vergt"


def test_every_professional_who_took_part_is_a_performer_of_the_act():
    event = parse(cda()).find("v3:documentationOf/v3:serviceEvent", NS)

    assert attr(event, "v3:effectiveTime/v3:low", "value") == "20261207140000+0100"
    assert attr(event, "v3:effectiveTime/v3:high", "value") == "20261207142500+0100"
    performers = [
        (
            p.get("typeCode"),
            attr(p, "v3:assignedEntity/v3:id", "extension"),
            attr(p, "v3:assignedEntity/v3:code", "code"),
        )
        for p in event.findall("v3:performer", NS)
    ]
    assert performers == [("PRF", f"8{CARDIOLOGIST_RPPS}", "10"), ("SPRF", f"8{NURSE_RPPS}", "60")]


def test_the_body_is_the_pdf_rendering_byte_for_byte():
    document = clinical_document()
    pdf = render_pdf(document, zone=ZONE)

    text = parse(build_cda(document, pdf, zone=ZONE)).find("v3:component/v3:nonXMLBody/v3:text", NS)

    assert (text.get("mediaType"), text.get("representation")) == ("application/pdf", "B64")
    assert base64.b64decode(text.text, validate=True) == pdf


def test_a_correction_replaces_its_parent_document():
    correction = clinical_document(
        document_uid="1.2.250.1.999.1.1.17.2", version=2, replaces_uid="1.2.250.1.999.1.1.17.1"
    )

    xml = cda(correction)

    root = parse(xml)
    related = root.find("v3:relatedDocument", NS)
    assert related.get("typeCode") == "RPLC"
    assert attr(related, "v3:parentDocument/v3:id", "root") == "1.2.250.1.999.1.1.17.1"
    assert attr(root, "v3:id", "root") == "1.2.250.1.999.1.1.17.2"
    assert attr(root, "v3:setId", "root") == "1.2.250.1.999.1.1.17.1"
    assert attr(root, "v3:versionNumber", "value") == "2"
    assert check_cda(xml) == []


def test_the_same_document_always_gives_the_same_bytes():
    assert cda() == cda()
    assert cda() != cda(clinical_document(version=2, replaces_uid="1.2.250.1.999.1.1.16"))


def test_accents_and_markup_in_free_text_survive_as_utf8():
    document = clinical_document(title="Compte rendu <urgent> & œdème", sections=())

    xml = cda(document)

    assert "LEFÈVRE-ŒUVRARD".encode() in xml and "FRANÇOISE".encode() in xml and "Garçon".encode() in xml
    assert parse(xml).findtext("v3:title", namespaces=NS) == "Compte rendu <urgent> & œdème"
    assert b"&lt;urgent&gt; &amp;" in xml


NOT_XML = "\x00\x01\x08\x0b\x0c\x1f\ud800\udfff\ufffe\uffff"  # what XML 1.0 forbids; \t \n \r \x7f it allows


@pytest.mark.parametrize("forbidden", [NOT_XML, *NOT_XML], ids=["all", *(f"U+{ord(c):04X}" for c in NOT_XML)])
def test_the_characters_xml_forbids_are_dropped_from_every_text(forbidden):
    """Names, the title and ids are written as they were stored; one stored before the input policy refused these
    characters (or from outside the forms) would make the receiver's parser reject the whole document."""

    def dirty(text: str | None) -> str | None:
        return text and "".join(f"{c}{forbidden[n % len(forbidden)]}" for n, c in enumerate(text))

    clean = clinical_document(title="Compte rendu\t\x7f & <suivi>")
    clean = dataclasses.replace(clean, author=dataclasses.replace(clean.author, last_name="O'Neïl\r"))
    names = ("birth_name", "used_last_name", "first_birth_given_name", "birth_given_names", "used_first_name")
    patient = dataclasses.replace(clean.patient, **{name: dirty(getattr(clean.patient, name)) for name in names})
    dirtied = dataclasses.replace(
        clean,
        title=dirty(clean.title),
        patient=patient,
        author=dataclasses.replace(
            clean.author,
            first_name=dirty(clean.author.first_name),
            last_name=dirty(clean.author.last_name),
            mssante_address=dirty(clean.author.mssante_address),
        ),
        custodian=dataclasses.replace(clean.custodian, name=dirty(clean.custodian.name)),
        participants=tuple(
            dataclasses.replace(participant, last_name=dirty(participant.last_name))
            for participant in clean.participants
        ),
    )
    pdf = render_pdf(clean, zone=ZONE)

    written = build_cda(dirtied, pdf, zone=ZONE)

    SafeET.fromstring(written)  # well-formed, for a strict parser
    assert written == build_cda(clean, pdf, zone=ZONE)  # the same as the clean input, to the byte
    assert check_cda(written) == []


def test_a_professional_without_rpps_is_written_with_an_unknown_id_and_flagged():
    author = dataclasses.replace(clinical_document().author, rpps=None)

    xml = cda(clinical_document(author=author))

    assert parse(xml).find("v3:author/v3:assignedAuthor/v3:id", NS).attrib == {"nullFlavor": "UNK"}
    assert any(problem.startswith("Auteur : identifiant IdNat_PS") for problem in check_cda(xml))


WRONG_KEY_RPPS = CARDIOLOGIST_RPPS[:-1] + str((int(CARDIOLOGIST_RPPS[-1]) + 1) % 10)
FOREIGN_RELATION = (
    '<relatedDocument typeCode="XFRM"><parentDocument><id root="1.2" /></parentDocument></relatedDocument>'
)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('xmlns="urn:hl7-org:v3"', 'xmlns="urn:hl7-org:v2"', "Élément racine inattendu"),
        ('<realmCode code="FR" />', '<realmCode code="US" />', "realmCode doit valoir FR"),
        ('extension="POCD_HD000040"', 'extension="POCD_HD000041"', "typeId/@extension incorrect"),
        ('code="85208-7"', 'code="00000-0"', "Type de document inconnu"),
        ('<effectiveTime value="20261207153000+0100"', '<effectiveTime value="20261207"', "effectiveTime"),
        ('<languageCode code="fr-FR" />', "", "languageCode doit valoir fr-FR"),
        (f'extension="8{CARDIOLOGIST_RPPS}"', f'extension="{CARDIOLOGIST_RPPS}"', "Auteur : identifiant IdNat_PS"),
        (CARDIOLOGIST_RPPS, WRONG_KEY_RPPS, "Auteur : Le numéro RPPS est invalide"),
        (NIR, NIR[:-2] + "00", "INS : Le matricule INS est invalide"),
        ("<county>24520</county>", "<county>Périgueux</county>", "code INSEE du lieu de naissance"),
        ('<signatureCode code="S" />', '<signatureCode code="X" />', "time et signatureCode S requis"),
        ('mediaType="application/pdf"', 'mediaType="text/plain"', "application/pdf en B64"),
        ('representation="B64">JVBER', 'representation="B64">!!!!', "pas du base64 valide"),
        ('representation="B64">JVBE', 'representation="B64">AAAA', "ne contient pas un PDF"),
        ("  <title>", f"  {FOREIGN_RELATION}\n  <title>", "RPLC attendu"),
        ("  <title>", "  <author />\n  <title>", "hors de l'ordre du schéma CDA R2"),
        ("<birthTime ", "<birthDate ", "non prévu par le schéma CDA R2"),
        ("<?xml", "<<?xml", "XML mal formé"),
    ],
)
def test_the_structural_check_names_what_a_broken_document_gets_wrong(old, new, problem):
    xml = cda().decode()
    assert old in xml, "the mutation must apply"

    problems = check_cda(xml.replace(old, new, 1).encode())

    assert any(problem in found for found in problems), problems
