import dataclasses
import datetime as dt
import re

import time_machine

from hub.documents import pdf as pdf_module
from hub.documents.clinical import ClinicalDocument, Custodian, PatientIdentity, ProfessionalIdentity, Section
from hub.documents.pdf import referral_letter, render_pdf
from hub.models import Profession, Professional, Referral, Sex, Urgency
from tests import ZONE, factories
from tests.pdfs import pdf_lines

BIRTH_DATE = dt.date(1948, 3, 1)
NIR = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH_DATE, birth_place="24520", order=123)
CARDIOLOGIST_RPPS = factories.valid_rpps()
NURSE_RPPS = factories.valid_rpps()


def clinical_document(**changes) -> ClinicalDocument:
    """A signed teleconsultation report: a QUAL patient with accents in every name, a cardiologist and the
    IDEL who accompanied the patient."""
    patient = PatientIdentity(
        birth_name="LEFÈVRE-ŒUVRARD",
        first_birth_given_name="FRANÇOISE",
        birth_given_names="FRANÇOISE MARIE",
        birth_date=BIRTH_DATE,
        sex="F",
        birth_place_insee="24520",
        local_id="4217",
        used_last_name="MARTIN",
        used_first_name="Fanny",
        ins=NIR,
        ins_oid="1.2.250.1.213.1.4.8",
        identity_status="QUAL",
    )
    cardiologist = ProfessionalIdentity(
        rpps=CARDIOLOGIST_RPPS,
        last_name="Dupré",
        first_name="Hélène",
        profession="Médecin spécialiste",
        specialty="Cardiologie",
        role="Auteur",
        mssante_address="helene.dupre@medecin.mssante.fr",
    )
    nurse = ProfessionalIdentity(
        rpps=NURSE_RPPS, last_name="Garçon", first_name="Zoé", profession="Infirmier·e", role="IDEL accompagnant"
    )
    document = ClinicalDocument(
        document_uid="1.2.250.1.999.1.1.17.1",
        loinc="85208-7",
        title="Compte rendu de téléconsultation",
        created_at=dt.datetime(2026, 12, 7, 14, 30, tzinfo=dt.UTC),
        patient=patient,
        author=cardiologist,
        custodian=Custodian(name="CPTS du Pays de Vergt", finess="240012345"),
        service_started_at=dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC),
        service_ended_at=dt.datetime(2026, 12, 7, 13, 25, tzinfo=dt.UTC),
        participants=(nurse,),
        sections=(
            Section("Actes réalisés", "ECG 12 dérivations, auscultation assistée. Cœur régulier, 72 bpm."),
            Section("Conclusion", "Souffle à explorer : échocardiographie en présentiel sous un mois."),
        ),
    )
    return dataclasses.replace(document, **changes)


def patient_without_ins(status: str) -> PatientIdentity:
    return dataclasses.replace(clinical_document().patient, ins=None, ins_oid=None, identity_status=status)


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", data))


def test_the_pdf_is_a_pdf_and_the_same_document_always_gives_the_same_bytes():
    document = clinical_document()
    first = render_pdf(document, zone=ZONE)
    with time_machine.travel(dt.datetime(2027, 6, 1, 9, 0, tzinfo=dt.UTC)):
        later = render_pdf(document, zone=ZONE)

    assert first.startswith(b"%PDF-") and first.rstrip().endswith(b"%%EOF")
    assert later == first, "the hash stored at signing must match the file sent later"
    assert b"/CreationDate (D:20261207143000Z" in first
    assert render_pdf(dataclasses.replace(document, title="Compte rendu de télésoin"), zone=ZONE) != first


TEXTS_OF_EVERY_SHAPE = (
    "—",
    "Souffle à explorer : échocardiographie.",
    "a " * 70,  # wraps at a space
    "c-" * 80,  # wraps at a hyphen
    "x" * 140,  # a word longer than the line
    "  leading and trailing  ",
    "PAS\u202f≥\u202f140\u00a0mmHg 😟 → contrôle\tà J7 ; ℃ ●\u200b",
    "line\nbreak\r\nand\u00adsoft hyphen",
)


def line_breaker_only(pdf, height, text):
    """What hub.documents.pdf._text drew before its one-line path: every text through fpdf2's line breaker."""
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def test_text_drawn_on_one_line_gives_the_bytes_of_the_line_breaker(monkeypatch):
    """Short texts skip fpdf2's line breaker for speed: the PDF must stay byte for byte what it drew before, or the
    hash of a report signed before an upgrade would not match a rendering after it."""
    documents = [
        clinical_document(
            title=text,
            patient=dataclasses.replace(clinical_document().patient, birth_name=text, used_first_name=text),
            sections=(Section("Observations", text),),
        )
        for text in TEXTS_OF_EVERY_SHAPE
    ]
    # Short lines falling on every height of the page, so that some break it.
    documents.append(clinical_document(sections=tuple(Section(f"Séance {n}", "ECG lu. " * (n % 7)) for n in range(60))))
    fast = [render_pdf(document, zone=ZONE) for document in documents]

    monkeypatch.setattr(pdf_module, "_text", line_breaker_only)
    assert [render_pdf(document, zone=ZONE) for document in documents] == fast


def test_the_pdf_shows_the_patient_strict_traits_and_identity_status():
    lines = pdf_lines(render_pdf(clinical_document(), zone=ZONE))

    for label, value in (
        ("Nom de naissance", "LEFÈVRE-ŒUVRARD"),
        ("Premier prénom de naissance", "FRANÇOISE"),
        ("Prénoms de naissance", "FRANÇOISE MARIE"),
        ("Date de naissance", "01/03/1948"),
        ("Sexe", "Féminin"),
        ("Lieu de naissance (code INSEE)", "24520"),
        ("Nom utilisé", "MARTIN"),
        ("Prénom utilisé", "Fanny"),
        ("INS (matricule)", NIR),  # its OID is for machines: the CDA carries it
        ("Statut de l'identité", "Identité qualifiée"),
    ):
        assert lines[lines.index(label) + 1] == value


def test_the_ins_is_printed_only_when_the_document_carries_it():
    patient = patient_without_ins("VALI")

    text = "\n".join(pdf_lines(render_pdf(clinical_document(patient=patient), zone=ZONE)))

    assert "INS (matricule)" not in text and NIR not in text
    assert "Identité validée" in text and "LEFÈVRE-ŒUVRARD" in text


def test_the_pdf_names_every_professional_with_profession_and_rpps():
    lines = pdf_lines(render_pdf(clinical_document(), zone=ZONE))

    assert lines[lines.index("Auteur") + 1] == (
        f"Hélène Dupré, Médecin spécialiste (Cardiologie), RPPS {CARDIOLOGIST_RPPS}"
    )
    assert lines[lines.index("IDEL accompagnant") + 1] == f"Zoé Garçon, Infirmier·e, RPPS {NURSE_RPPS}"


def test_the_pdf_gives_the_title_custodian_date_of_the_act_in_paris_and_the_sections():
    lines = pdf_lines(render_pdf(clinical_document(), zone=ZONE))

    assert lines[0] == "Compte rendu de téléconsultation"
    assert not [line for line in lines if "LOINC" in line or "85208-7" in line], "the title names the type"
    assert "Structure responsable : CPTS du Pays de Vergt (FINESS 240012345)" in lines
    assert lines[lines.index("Date et heure de l'acte") + 1] == "lundi 7 décembre 2026, 14 h 00"
    assert lines[lines.index("Fin de l'acte") + 1] == "lundi 7 décembre 2026, 14 h 25"
    conclusion = lines.index("Conclusion")
    assert lines[conclusion + 1].startswith("Souffle à explorer")
    assert "ECG 12 dérivations, auscultation assistée. Cœur régulier, 72 bpm." in lines[:conclusion]
    assert "Version 1" in lines
    assert "Compte rendu de téléconsultation, version 1" in lines and "Page 1/1" in lines
    assert not [line for line in lines if "1.2.250" in line], "no OID shown to people"


def test_a_correction_says_which_version_it_replaces():
    correction = clinical_document(
        document_uid="1.2.250.1.999.1.1.17.2", version=2, replaces_uid="1.2.250.1.999.1.1.17.1"
    )

    lines = pdf_lines(render_pdf(correction, zone=ZONE))

    assert "Version 2, remplace la version 1" in lines


def test_free_text_is_drawn_as_written_and_what_the_font_lacks_as_a_placeholder():
    section = Section("Constantes", "PAS\u202f≥\u202f140 mmHg 😟 → contrôle\tà J7 ; ℃ ●\u200b")

    lines = pdf_lines(render_pdf(clinical_document(sections=(section,)), zone=ZONE))

    assert "PAS ≥ 140 mmHg ? → contrôle    à J7 ; °C •" in lines, "no-break spaces read back as spaces"


def test_a_long_report_runs_over_several_numbered_pages():
    long_text = "\n".join(f"Ligne {n} : observation détaillée de la séance." for n in range(120))

    data = render_pdf(clinical_document(sections=(Section("Observations", long_text),)), zone=ZONE)

    assert pdf_pages(data) == 3
    lines = pdf_lines(data)
    assert {"Page 1/3", "Page 2/3", "Page 3/3"} <= set(lines)
    assert lines.count("Patient : LEFÈVRE-ŒUVRARD FRANÇOISE, né·e le 01/03/1948") == 3, "every page names its patient"


def test_the_referral_letter_is_a_pdf(db_session, cpts):
    referral = a_referral(db_session, cpts)
    gp = referral.author
    letter = referral_letter(referral, program_name="Téléconsultation cardiologie CH Périgueux", zone="Europe/Paris")
    assert letter.startswith(b"%PDF-")
    lines = pdf_lines(letter)
    assert lines[lines.index("Date") + 1] == "2 décembre 2026", "the day it was sent, in Paris"
    assert lines[lines.index("Urgence") + 1] == "Sous 15 jours"
    signer = f"Dr {gp.first_name} {gp.last_name.upper()}, médecin généraliste, RPPS {gp.rpps}"
    assert lines[lines.index("Médecin adresseur") + 1] == signer and f"Signé : {signer}" in lines
    assert not [line for line in lines if "LOINC" in line or "96349" in line or "OID" in line]


def test_the_referral_letter_drawn_on_one_line_gives_the_bytes_of_the_line_breaker(db_session, cpts, monkeypatch):
    referral = a_referral(db_session, cpts)

    def letters() -> list[bytes]:
        made = []
        with time_machine.travel(dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC), tick=False):  # its creation date
            for text in TEXTS_OF_EVERY_SHAPE:
                referral.reason = referral.history = text
                made.append(referral_letter(referral, program_name=text, zone=ZONE))
        return made

    fast = letters()
    monkeypatch.setattr(pdf_module, "_text", line_breaker_only)
    assert letters() == fast


def a_referral(db_session, cpts) -> Referral:
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts)
    return Referral(
        cpts_id=cpts.id,
        patient=patient,
        patient_id=patient.id,
        author=db_session.get(Professional, gp.id),
        author_id=gp.id,
        created_by_user_id=0,
        reason="Dyspnée d'effort, œdèmes",
        current_treatment="Furosémide 40 mg",
        urgency=Urgency.SOON,
        submitted_at=dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC),
    )
