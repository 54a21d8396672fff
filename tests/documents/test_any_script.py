"""I4: every generated document accepts any Unicode text the forms accept. The referral letter, the report and
the fee statement draw Latin Extended, Greek, Cyrillic and the usual signs in one Unicode font; a character the
font lacks (an emoji) becomes a visible placeholder instead of a server error."""

import dataclasses
import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.documents.clinical import Section
from hub.documents.pdf import referral_letter, render_pdf
from hub.models import FeeStatus, Profession, Professional
from hub.services import statements
from tests import ZONE
from tests.documents.test_pdf import clinical_document
from tests.pdfs import pdf_text

ANY_SCRIPT = "≥ 😀 Łukasz"


# --- the renderings, with arbitrary text ------------------------------------------------------------------

# Any code point, the astral planes, controls and lone surrogates included (a JSON body may carry "\ud800").
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
RENDERINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RENDERINGS
@given(title=ANY_TEXT, name=ANY_TEXT, text=ANY_TEXT)
# Always tried, whatever hypothesis draws: the characters XML forbids, which the PDF drops like any control.
@example(title="Compte\x0b rendu\x00\uffff\ud800", name="DU\x1bPONT\ufffe", text="Suivi\x0c\x7f")
def test_the_report_pdf_renders_any_text(title, name, text):
    document = clinical_document(title=title, sections=(Section(name, text), Section("Conclusion", text)))
    document = dataclasses.replace(
        document, patient=dataclasses.replace(document.patient, birth_name=name, used_first_name=text)
    )
    data = render_pdf(document, zone=ZONE)
    pdf_text(data)
    assert render_pdf(document, zone=ZONE) == data, "the same document gives the same bytes"


@RENDERINGS
@given(reason=ANY_TEXT, name=ANY_TEXT, program=ANY_TEXT)
def test_the_referral_letter_renders_any_text(reason, name, program):
    patient = SimpleNamespace(display_name=name, birth_date=dt.date(1948, 3, 1))
    author = SimpleNamespace(full_name=name, rpps="10024000018")
    referral = SimpleNamespace(
        patient=patient,
        author=author,
        target_specialist=None,
        urgency=None,
        submitted_at=None,
        created_at=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC),
        reason=reason,
        current_treatment=program,
        history=reason,
        free_text=name,
    )
    pdf_text(referral_letter(referral, program_name=program, zone="Europe/Paris"))


@RENDERINGS
@given(name=ANY_TEXT, note=ANY_TEXT, cpts_name=ANY_TEXT)
def test_the_fee_statement_renders_any_text(name, note, cpts_name):
    professional = Professional(id=1, first_name=name, last_name=name, profession=Profession.NURSE, rpps=None)
    line = statements.StatementLine(
        id=1,
        professional_id=1,
        act_on=dt.date(2026, 11, 23),
        code="TLL",
        label=note,
        coefficient=Decimal(1),
        amount=Decimal(12),
        status=FeeStatus.ACCRUED,
        patient_initials=name[:2],
        prescriber_rpps=None,
        prescriber_name=None,
        note=note,
    )
    statement = statements.Statement(professional, cpts_name, statements.Period(2026, 11), (line,))
    pdf_text(statements.statement_pdf(statement, generated_on=dt.date(2026, 11, 30)))


@pytest.mark.parametrize(
    "text",
    ["PAS ≥ 140 mmHg, ≤ 90 → contrôle • J7…", "Łódź, Ελληνικά, Русский, Čeština, Română: Ș ț", "€ 12,00 ½ µg ± 2 °C"],
)
def test_scripts_and_signs_the_font_holds_are_drawn_as_written(text):
    data = render_pdf(clinical_document(sections=(Section("Constantes", text),)), zone=ZONE)
    assert text in pdf_text(data)
