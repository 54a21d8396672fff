"""The readable rendering of a clinical document: an A4 PDF in French with the patient's strict traits, the
professionals' RPPS, the date of the act and the sections. The same document always gives the same bytes,
so the hash stored at signing still matches the file sent on a later attempt. Also the referral letter, drawn
from a referral's fields."""

from zoneinfo import ZoneInfo

from hub.documents.clinical import ClinicalDocument, PatientIdentity, ProfessionalIdentity
from hub.formatting import french_date, french_datetime
from hub.models.patient import IDENTITY_STATUS_LABELS
from hub.models.referral import URGENCY_LABELS

SEX_LABELS = {"F": "Féminin", "M": "Masculin", "I": "Indéterminé"}
LINE = 5.0
LABEL_WIDTH = 62.0


def render_pdf(doc: ClinicalDocument, *, zone: str) -> bytes:
    """The document as PDF bytes, identical for an identical document; times are wall times in `zone`."""
    from hub.typeface import UnicodePDF  # only the renderings need fpdf2

    class Pages(UnicodePDF):
        def footer(self) -> None:  # fpdf calls it at the bottom of every page
            _footer(self, doc)

    pdf = Pages(format="A4")
    pdf.set_creation_date(doc.created_at)  # fpdf stamps "now" otherwise, and the hash would change
    pdf.set_title(doc.title)
    pdf.set_author(doc.author.full_name)
    pdf.set_creator("Hub CPTS")
    pdf.set_producer("Hub CPTS")
    pdf.set_lang("fr-FR")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.alias_nb_pages()
    pdf.add_page()
    _heading(pdf, doc, zone)
    _patient(pdf, doc.patient)
    _professionals(pdf, doc)
    _sections(pdf, doc)
    return bytes(pdf.output())


def _heading(pdf, doc: ClinicalDocument, zone: str) -> None:
    pdf.set_font(style="B", size=15)
    _text(pdf, 7, doc.title)
    pdf.set_font(size=9)
    # The title names the document's type in words; its codes (LOINC, OIDs) are for machines, in the CDA.
    custodian = doc.custodian.name + (f" (FINESS {doc.custodian.finess})" if doc.custodian.finess else "")
    pdf.cell(text=f"Structure responsable : {custodian}", new_x="LMARGIN", new_y="NEXT")
    version = f"Version {doc.version}"
    if doc.replaces_uid:
        version += f", remplace la version {doc.version - 1}"
    pdf.cell(text=version, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _field(pdf, "Date et heure de l'acte", french_datetime(doc.service_started_at or doc.created_at, zone))
    if doc.service_ended_at:
        _field(pdf, "Fin de l'acte", french_datetime(doc.service_ended_at, zone))
    _field(pdf, "Document établi le", french_datetime(doc.created_at, zone))
    pdf.ln(2)


def _patient(pdf, patient: PatientIdentity) -> None:
    _title(pdf, "Patient")
    _field(pdf, "Nom de naissance", patient.birth_name)
    _field(pdf, "Premier prénom de naissance", patient.first_birth_given_name)
    if patient.birth_given_names:
        _field(pdf, "Prénoms de naissance", patient.birth_given_names)
    _field(pdf, "Date de naissance", patient.birth_date.strftime("%d/%m/%Y"))
    _field(pdf, "Sexe", SEX_LABELS.get(patient.sex, patient.sex))
    _field(pdf, "Lieu de naissance (code INSEE)", patient.birth_place_insee)
    if patient.used_last_name:
        _field(pdf, "Nom utilisé", patient.used_last_name)
    if patient.used_first_name:
        _field(pdf, "Prénom utilisé", patient.used_first_name)
    if patient.ins:
        _field(pdf, "INS (matricule)", patient.ins)
    _field(pdf, "Statut de l'identité", IDENTITY_STATUS_LABELS.get(patient.identity_status, patient.identity_status))
    pdf.ln(2)


def _professionals(pdf, doc: ClinicalDocument) -> None:
    _title(pdf, "Professionnels")
    _field(pdf, doc.author.role or "Auteur", professional_line(doc.author))
    for participant in doc.participants:
        _field(pdf, participant.role or "Participant", professional_line(participant))
    pdf.ln(2)


def professional_line(professional: ProfessionalIdentity) -> str:
    """Name, profession (specialty) and RPPS: how both renderings name a professional."""
    profession = professional.profession
    if professional.specialty:
        profession += f" ({professional.specialty})"
    rpps = f"RPPS {professional.rpps}" if professional.rpps else "RPPS non renseigné"
    return f"{professional.full_name}, {profession}, {rpps}"


def _sections(pdf, doc: ClinicalDocument) -> None:
    for section in doc.sections:
        _title(pdf, section.title)
        pdf.set_font(size=10)
        _text(pdf, LINE, section.text or "—")
        pdf.ln(3)


def _title(pdf, text: str) -> None:
    pdf.set_font(style="B", size=12)
    pdf.multi_cell(0, 7, text, border="B", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _field(pdf, label: str, value: str) -> None:
    pdf.set_font(style="B", size=10)
    pdf.cell(w=LABEL_WIDTH, h=LINE, text=label)
    pdf.set_font(size=10)
    _text(pdf, LINE, value or "—")


def _text(pdf, height: float, text: str) -> None:
    """`text` to the right margin, wrapped, then the next line. fpdf2's multi_cell measures the text again for every
    character it adds to a line, most of a report's rendering (bench/README.md, P7's worker); a text that fits on
    one line is drawn by `cell`, which writes the same bytes (tests/documents/test_pdf.py). Only printable text: the
    line breaker also reads tabs, line ends and the invisible and unbreakable spaces, which `cell` would not."""
    # Text shaping measures kerned runs where the line breaker sums glyphs' widths: then the breaker alone decides.
    width = pdf.w - pdf.r_margin - pdf.x - 2 * pdf.c_margin
    if text.isprintable() and not pdf.text_shaping and pdf.get_string_width(text) <= width:
        pdf.cell(w=0, h=height, text=text, new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def _footer(pdf, doc: ClinicalDocument) -> None:
    # Every page names its patient: a page printed or scanned alone must still be filed under the right one.
    patient = doc.patient
    pdf.set_y(-15)
    pdf.set_font(size=8)
    born = patient.birth_date.strftime("%d/%m/%Y")
    who = f"{patient.birth_name} {patient.first_birth_given_name}, né·e le {born}"
    pdf.cell(w=0, h=4, text=f"Patient : {who}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(w=0, h=4, text=f"{doc.title}, version {doc.version}", align="L")
    pdf.set_x(pdf.l_margin)
    pdf.cell(w=0, h=4, text=f"Page {pdf.page_no()}/{{nb}}", align="R")


def referral_letter(referral, *, program_name: str | None = None, zone: str) -> bytes:
    """The referral letter (lettre d'adressage) as a small PDF: its date (the day it was sent, in `zone`), its
    urgency and its signer, the referring GP; then the patient, the target and the letter. Document types and
    identifiers of the exchange standards stay out of what a person reads."""
    from hub.typeface import UnicodePDF  # only the renderings need fpdf2

    pdf = UnicodePDF(format="A4")
    pdf.set_title("Lettre d'adressage")
    pdf.set_author(referral.author.full_name)
    pdf.add_page()
    pdf.set_font(style="B", size=14)
    pdf.cell(0, 10, "Lettre d'adressage", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(size=10)
    patient = referral.patient
    target = program_name or (referral.target_specialist.full_name if referral.target_specialist else "")
    written = referral.submitted_at or referral.created_at
    signer = _signer(referral.author)
    lines = [
        ("Date", french_date(written.astimezone(ZoneInfo(zone)).date()) if written else "Brouillon, non daté"),
        ("Urgence", URGENCY_LABELS[referral.urgency] if referral.urgency else "—"),
        ("Médecin adresseur", signer),
        ("Patient", f"{patient.display_name}, né·e le {patient.birth_date.strftime('%d/%m/%Y')}"),
        ("Adressé à", target),
        ("Motif", referral.reason),
        ("Traitement en cours", referral.current_treatment or ""),
        ("Antécédents", referral.history or ""),
        ("Commentaire", referral.free_text or ""),
    ]
    for label, value in lines:
        pdf.set_font(style="B", size=10)
        pdf.cell(0, 6, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(size=10)
        _text(pdf, 5, value or "—")
    pdf.ln(4)
    pdf.set_font(style="B", size=10)
    _text(pdf, 5, f"Signé : {signer}")
    return bytes(pdf.output())


def _signer(author) -> str:
    """« Dr Claire MARTIN, médecin généraliste, RPPS 10024000018 »."""
    rpps = f", RPPS {author.rpps}" if author.rpps else ""
    return f"Dr {author.full_name}, médecin généraliste{rpps}"
