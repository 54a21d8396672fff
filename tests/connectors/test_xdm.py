"""The IHE XDM package: layout, XDS metadata whose SHA-1 hash and size match the documents, the INS only
for a qualified identity, and the same bytes for the same input."""

import datetime as dt
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, replace

import pytest
from defusedxml import ElementTree as SafeET

from connectors.xdm import build_xdm_zip
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
from tests import ZONE

RIM = "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}"
INS = "255081416802538"
INS_OID = "1.2.250.1.213.1.4.8"
LOCAL_ID = "1.2.250.1.999.1.1.7.42"
DOCUMENT_UID = "2.25.123456789012345678901234567890"
SUBMISSION_UID = "2.25.987654321098765432109876543210"
SIGNED_AT = dt.datetime(2026, 3, 30, 13, 40, tzinfo=dt.UTC)
ENTRY_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
ENTRY_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ENTRY_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
ENTRY_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"


def clinical_document(*, qualified: bool = True, title: str = "Compte rendu de téléconsultation") -> ClinicalDocument:
    patient = PatientIdentity(
        birth_name="DUPONT",
        first_birth_given_name="Marie",
        birth_date=dt.date(1955, 8, 14),
        sex="F",
        birth_place_insee="63113",
        local_id=LOCAL_ID,
        ins=INS if qualified else None,
        ins_oid=INS_OID if qualified else None,
        identity_status="QUAL" if qualified else "PROV",
    )
    author = ProfessionalIdentity(
        rpps="10000000017",
        last_name="MARTIN",
        first_name="Paul",
        profession="Médecin spécialiste",
        specialty="Cardiologie",
        role="Auteur",
        mssante_address="paul.martin@hopital.mssante.fr",
    )
    return ClinicalDocument(
        document_uid=DOCUMENT_UID,
        loinc="85208-7",
        title=title,
        created_at=SIGNED_AT,
        patient=patient,
        author=author,
        custodian=Custodian(name="CPTS du Livradois", finess="630000000", local_id="1.2.250.1.999.1.1.7"),
        service_started_at=SIGNED_AT - dt.timedelta(minutes=40),
        service_ended_at=SIGNED_AT - dt.timedelta(minutes=25),
        sections=(Section("Conclusion", "Pas de décompensation."),),
    )


def rendered(document: ClinicalDocument) -> tuple[DocumentPackage, dict[str, bytes]]:
    """The package as the reports workflow freezes it, and its files by name."""
    pdf = render_pdf(document, zone=ZONE)
    cda = build_cda(document, pdf, zone=ZONE)
    renderings = (
        StoredRendering("cda", "text/xml", hashlib.sha256(cda).hexdigest(), len(cda), "DOC0001.XML"),
        StoredRendering("pdf", "application/pdf", hashlib.sha256(pdf).hexdigest(), len(pdf), "DOC0001.PDF"),
    )
    return DocumentPackage(document, renderings), {"DOC0001.XML": cda, "DOC0001.PDF": pdf}


@dataclass
class Entry:
    mime: str
    slots: dict[str, list[str]]
    identifiers: dict[str, str]
    classifications: dict[str, str]
    author: dict[str, list[str]]


@dataclass
class Xdm:
    names: list[str]
    files: dict[str, bytes]
    entries: list[Entry]
    submission_set: object
    associations: list[tuple[str, str, str]]

    def entry(self, mime: str) -> Entry:
        return next(e for e in self.entries if e.mime == mime)


def read_xdm(zip_bytes: bytes) -> Xdm:
    """Open an XDM zip and read its METADATA.XML (with defusedxml: it came over the network)."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
    root = SafeET.fromstring(files["IHE_XDM/SUBSET01/METADATA.XML"])
    entries = [_entry(element) for element in root.iter(f"{RIM}ExtrinsicObject")]
    associations = [
        (a.get("associationType").rpartition(":")[2], a.get("sourceObject"), a.get("targetObject"))
        for a in root.iter(f"{RIM}Association")
    ]
    return Xdm(names, files, entries, root.find(f".//{RIM}RegistryPackage"), associations)


def _slots(element) -> dict[str, list[str]]:
    return {
        slot.get("name"): [value.text for value in slot.iter(f"{RIM}Value")] for slot in element.findall(f"{RIM}Slot")
    }


def _entry(element) -> Entry:
    classifications = element.findall(f"{RIM}Classification")
    author = next(c for c in classifications if c.get("classificationScheme") == ENTRY_AUTHOR)
    return Entry(
        mime=element.get("mimeType"),
        slots=_slots(element),
        identifiers={
            i.get("identificationScheme"): i.get("value") for i in element.findall(f"{RIM}ExternalIdentifier")
        },
        classifications={c.get("classificationScheme"): c.get("nodeRepresentation") for c in classifications},
        author=_slots(author),
    )


def test_the_package_has_the_xdm_layout_and_metadata_that_match_its_documents():
    package, files = rendered(clinical_document())

    xdm = read_xdm(build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT))

    assert xdm.names == [
        "INDEX.HTM",
        "README.TXT",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/DOC0001.PDF",
    ]
    assert [e.mime for e in xdm.entries] == ["text/xml", "application/pdf"]
    for entry in xdm.entries:
        content = xdm.files[f"IHE_XDM/SUBSET01/{entry.slots['URI'][0]}"]
        assert entry.slots["hash"] == [hashlib.sha1(content).hexdigest()]  # noqa: S324 -- XDS's hash is SHA-1
        assert entry.slots["size"] == [str(len(content))]
        assert entry.slots["languageCode"] == ["fr-FR"]
        assert entry.slots["creationTime"] == ["20260330134000"]
    assert xdm.files["IHE_XDM/SUBSET01/DOC0001.XML"] == files["DOC0001.XML"]
    assert xdm.files["IHE_XDM/SUBSET01/DOC0001.PDF"] == files["DOC0001.PDF"]


def test_the_entries_carry_the_document_id_type_author_and_patient():
    package, files = rendered(clinical_document())

    xdm = read_xdm(build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT))

    cda = xdm.entry("text/xml")
    assert cda.identifiers[ENTRY_UNIQUE_ID] == DOCUMENT_UID
    assert xdm.entry("application/pdf").identifiers[ENTRY_UNIQUE_ID] != DOCUMENT_UID  # two documents, two ids
    assert cda.identifiers[ENTRY_PATIENT_ID] == f"{INS}^^^&{INS_OID}&ISO^NH"
    assert cda.classifications[ENTRY_TYPE] == "85208-7"
    assert cda.author["authorPerson"] == ["810000000017^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"]
    assert cda.author["authorInstitution"] == ["CPTS du Livradois^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1630000000"]
    assert "PID-5|DUPONT^Marie^^^^^L" in cda.slots["sourcePatientInfo"]
    assert "PID-7|19550814" in cda.slots["sourcePatientInfo"]
    set_id = xdm.submission_set.get("id")
    assert {(kind, source) for kind, source, _ in xdm.associations} == {("HasMember", set_id)}
    assert sorted(target for *_, target in xdm.associations) == sorted(
        e.get("id") for e in SafeET.fromstring(xdm.files["IHE_XDM/SUBSET01/METADATA.XML"]).iter(f"{RIM}ExtrinsicObject")
    )


def test_without_a_qualified_identity_the_ins_is_nowhere_in_the_package():
    package, files = rendered(clinical_document(qualified=False))

    zipped = build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT)

    xdm = read_xdm(zipped)
    assert xdm.entry("text/xml").identifiers[ENTRY_PATIENT_ID] == "42^^^&1.2.250.1.999.1.1.7&ISO^PI"
    assert all(INS.encode() not in content for content in xdm.files.values())


def test_the_readme_is_french_and_names_the_sender_and_the_index_lists_the_documents():
    package, files = rendered(clinical_document())

    xdm = read_xdm(build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT))

    readme = xdm.files["README.TXT"].decode()
    assert "Structure émettrice : CPTS du Livradois (FINESS 630000000)" in readme
    assert "IHE XDM" in readme
    index = xdm.files["INDEX.HTM"].decode()
    assert 'href="IHE_XDM/SUBSET01/DOC0001.XML"' in index and 'href="IHE_XDM/SUBSET01/DOC0001.PDF"' in index
    assert "DUPONT" not in readme + index


def test_the_same_input_gives_the_same_bytes_and_another_submission_other_bytes():
    package, files = rendered(clinical_document())

    first = build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT)
    again = build_xdm_zip(package, dict(files), submission_uid=SUBMISSION_UID, now=SIGNED_AT)
    other = build_xdm_zip(package, files, submission_uid="2.25.1", now=SIGNED_AT)

    assert first == again
    assert other != first


@pytest.mark.parametrize("variant", ["usual", "non-ascii file name", "empty file", "signed before 1980"])
def test_the_zip_is_what_zipfile_wrote(variant):
    package, files = rendered(clinical_document())
    now = SIGNED_AT
    if variant == "non-ascii file name":  # zipfile writes it in UTF-8 with the language-encoding flag
        cda, pdf = package.renderings
        package = replace(package, renderings=(cda, replace(pdf, filename="Compte rendu n°1 « é ».pdf")))
        files["Compte rendu n°1 « é ».pdf"] = files["DOC0001.PDF"]
    elif variant == "empty file":
        files["DOC0001.PDF"] = b""
    else:
        now = dt.datetime(1979, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

    zipped = build_xdm_zip(package, files, submission_uid=SUBMISSION_UID, now=now, intended_recipient="a@b.mssante.fr")

    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    assert [name for name, _ in members][-2:] == [f"IHE_XDM/SUBSET01/{r.filename}" for r in package.renderings]
    assert zipped == zipfile_reference(members, now, documents=len(package.renderings))


def zipfile_reference(members: list[tuple[str, bytes]], now: dt.datetime, *, documents: int) -> bytes:
    """The package's zip as zipfile.ZipFile writes it: fixed order, times and attributes, the last `documents`
    members stored and the others deflated."""
    stamp = now.astimezone(dt.UTC).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, (name, content) in enumerate(members):
            info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_STORED if number >= len(members) - documents else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def test_the_documents_are_stored_as_they_are_and_the_other_members_deflated():
    package, files = rendered(clinical_document())

    zipped = build_xdm_zip(package, files, submission_uid="2.25.1", now=SIGNED_AT, intended_recipient="a@b.mssante.fr")

    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.testzip() is None
        methods = {info.filename: info.compress_type for info in archive.infolist()}
        assert archive.read("IHE_XDM/SUBSET01/DOC0001.XML") == files["DOC0001.XML"]
        assert archive.read("IHE_XDM/SUBSET01/DOC0001.PDF") == files["DOC0001.PDF"]
    assert methods == {
        "INDEX.HTM": zipfile.ZIP_DEFLATED,
        "README.TXT": zipfile.ZIP_DEFLATED,
        "IHE_XDM/SUBSET01/METADATA.XML": zipfile.ZIP_DEFLATED,
        "IHE_XDM/SUBSET01/DOC0001.XML": zipfile.ZIP_STORED,
        "IHE_XDM/SUBSET01/DOC0001.PDF": zipfile.ZIP_STORED,
    }


def test_a_package_whose_files_are_missing_is_refused():
    package, files = rendered(clinical_document())
    with pytest.raises(ValueError, match=r"DOC0001\.PDF"):
        build_xdm_zip(package, {"DOC0001.XML": files["DOC0001.XML"]}, submission_uid=SUBMISSION_UID, now=SIGNED_AT)
    with pytest.raises(ValueError, match="aucun"):
        build_xdm_zip(replace(package, renderings=()), files, submission_uid=SUBMISSION_UID, now=SIGNED_AT)


def test_every_object_has_its_own_uuid_and_the_recipient_is_named():
    package, files = rendered(clinical_document())
    zipped = build_xdm_zip(
        package, files, submission_uid=SUBMISSION_UID, now=SIGNED_AT, intended_recipient="a@hopital.mssante.fr"
    )

    root = SafeET.fromstring(read_xdm(zipped).files["IHE_XDM/SUBSET01/METADATA.XML"])
    ids = [element.get("id") for element in root.iter() if element.get("id")]
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", i) for i in ids)
    assert len(ids) == len(set(ids)) > 20
    slots = {s.get("name"): s for s in read_xdm(zipped).submission_set.findall(f"{RIM}Slot")}
    assert [v.text for v in slots["intendedRecipient"].iter(f"{RIM}Value")] == ["||^^Internet^a@hopital.mssante.fr"]
