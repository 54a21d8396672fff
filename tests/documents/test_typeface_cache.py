"""The fonts parsed once per process (hub.typeface) draw the same as fpdf2's own `add_font` of each document,
whatever glyphs a document uses and in whatever order documents are rendered: the same bytes when a style drew a
glyph outside the usual ones (fpdf2 subsets the whole font), and otherwise, with the usual glyphs' font embedded
whole, the same page content, text, widths and ToUnicode map, each code drawing the same outline."""

import datetime as dt
import gc
import unicodedata
import warnings
from contextlib import contextmanager
from decimal import Decimal
from io import BytesIO
from types import SimpleNamespace

import pytest
import time_machine
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from hub import typeface
from hub.documents.clinical import Section
from hub.documents.pdf import referral_letter, render_pdf
from hub.models import FeeStatus, Profession, Professional
from hub.services import statements
from tests import ZONE
from tests.documents.test_pdf import clinical_document
from tests.pdfs import open_font_files

USUAL = st.sampled_from(sorted(map(chr, typeface.USUAL)))
NOW = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)
DOCUMENTS = {
    "accents and Œ": clinical_document(),
    "€, œ and signs": clinical_document(
        sections=(Section("Constantes", "TA ≥ 140/90 — SpO₂ 97 % ; µg, ±2 °C… « cœur » 12,50 € → suivi • fin"),)
    ),
    "any script": clinical_document(
        title="Łukasz Ωμέγα Жанна ŒUVRE",
        sections=(Section("Observations", "Ça va ; naïve, déjà-vu, Æsop. Ǆ ő ű ğ ş 😀"),),
    ),
    # The title is drawn again in the footer, in the regular style, when the document is output.
    "a Greek title": clinical_document(title="Compte rendu — Ωμέγα"),
    # The combining comma below is a component of the usual glyphs' Ș, without its own cmap entry there: the
    # CIDToGIDMap gives its glyph, the ToUnicode map its character.
    "a component drawn alone": clinical_document(sections=(Section("Observations", "-\u0326"),)),
    # One style embeds the usual glyphs' font, the other a subset of the whole font: the objects keep fpdf2's order.
    "Greek in the text": clinical_document(sections=(Section("Observations", "Ωμέγα"),)),
    "Greek in a heading": clinical_document(sections=(Section("Ωμέγα", "Rien à signaler"),)),
    # Lines broken inside words and between them, a word longer than the line: each line measured char by char.
    "a long paragraph": clinical_document(
        sections=(Section("Observations", "Dyspnée d'effort, œdèmes déclives. " * 40 + "x" * 150 + "\nFin."),)
    ),
}


class FpdfParsing(typeface.UnicodePDF):
    """The rendering before the fonts were parsed once per process: fpdf2 reads the font files anew and subsets
    the whole fonts."""

    output = FPDF.output

    def add_typeface(self) -> None:
        for style, name in typeface.FILES.items():
            self.add_font(typeface.FAMILY, style, typeface.font_file(name))
            font = self.fonts[typeface.FAMILY + style]
            for tag in typeface.LAYOUT_TABLES & set(font.ttfont.keys()):
                del font.ttfont[tag]


def uncached(render):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typeface, "UnicodePDF", FpdfParsing)
        return render()


@contextmanager
def fpdf2s_fonts():
    """Each style as fpdf2's `add_font` parses it, for a document never output: closed on leaving. Left open, a font
    stays reachable from its SubsetMap's glyph caches (per class) until some other document's output empties them,
    and the garbage collector then closes its file with a ResourceWarning in whichever test that is."""
    scratch = FPDF()
    fonts = {}
    try:
        for style, name in typeface.FILES.items():
            scratch.add_font(typeface.FAMILY, style, typeface.font_file(name))
            fonts[style] = scratch.fonts[typeface.FAMILY + style]
        yield fonts
    finally:
        for font in fonts.values():
            font.close()


def drawing(pdf: bytes) -> dict:
    """What a reader draws and extracts from a PDF: each page's content stream and text, and each font's
    dictionaries, widths, ToUnicode map and, for each code the content streams use, its glyph's outline and
    advance in the embedded font (which fontTools parses). The font file's other bytes and glyph ids are left out."""
    reader = PdfReader(BytesIO(pdf))
    fonts = {}
    for page in reader.pages:
        for name, reference in page["/Resources"]["/Font"].items():
            font = reference.get_object()
            cid_font = font["/DescendantFonts"][0].get_object()
            descriptor = cid_font["/FontDescriptor"].get_object()
            ttfont = TTFont(BytesIO(descriptor["/FontFile2"].get_object().get_data()))
            cid_to_gid = cid_font["/CIDToGIDMap"].get_object().get_data()
            glyphs = {}
            for code in range(len(cid_to_gid) // 2):
                if gid := int.from_bytes(cid_to_gid[2 * code : 2 * code + 2], "big"):
                    glyph_name = ttfont.getGlyphOrder()[gid]
                    coordinates, ends, flags = ttfont["glyf"][glyph_name].getCoordinates(ttfont["glyf"])
                    glyphs[code] = (list(coordinates), ends, list(flags), ttfont["hmtx"][glyph_name])
            fonts[name] = {
                "font": {key: value for key, value in font.items() if key not in ("/DescendantFonts", "/ToUnicode")},
                "to unicode": font["/ToUnicode"].get_object().get_data(),
                "CID font": {key: value for key, value in cid_font.items() if key in ("/Subtype", "/BaseFont", "/DW")},
                "widths": list(cid_font["/W"]),
                "descriptor": {key: value for key, value in descriptor.items() if key != "/FontFile2"},
                "glyphs": glyphs,
            }
    pages = [(page.get_contents().get_data(), page.extract_text()) for page in reader.pages]
    return {"pages": pages, "fonts": fonts}


def embedded_glyph_counts(pdf: bytes) -> list[int]:
    reader = PdfReader(BytesIO(pdf))
    counts = []
    for reference in reader.pages[0]["/Resources"]["/Font"].values():
        descriptor = reference.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        counts.append(len(TTFont(BytesIO(descriptor["/FontFile2"].get_object().get_data())).getGlyphOrder()))
    return counts


def assert_draws_the_same(pdf: bytes, expected: bytes) -> None:
    assert drawing(pdf) == drawing(expected)
    if embedded_glyph_counts(pdf) == embedded_glyph_counts(expected):  # no style embedded the usual glyphs' font
        assert pdf == expected


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_report_draws_the_same_as_with_fpdf2s_own_font_parsing(name):
    expected = uncached(lambda: render_pdf(DOCUMENTS[name], zone=ZONE))
    assert_draws_the_same(render_pdf(DOCUMENTS[name], zone=ZONE), expected)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(USUAL, max_size=30), text=st.text(USUAL, max_size=200))
def test_any_usual_characters_draw_the_same_as_with_fpdf2s_own_font_parsing(title, text):
    document = clinical_document(title=title, sections=(Section("Observations", text),))
    assert_draws_the_same(render_pdf(document, zone=ZONE), uncached(lambda: render_pdf(document, zone=ZONE)))


def test_a_french_report_embeds_the_usual_glyphs_font_other_glyphs_are_subsetted_from_the_whole(monkeypatch):
    render_pdf(DOCUMENTS["accents and Œ"], zone=ZONE)  # the usual glyphs' fonts are cut from the whole ones once
    usual = [len(typeface._usual_font(style).glyph_ids) for style in typeface.FILES]
    opened = []
    whole = typeface._open
    monkeypatch.setattr(typeface, "_open", lambda name: opened.append(name) or whole(name))
    regular_and_bold = ["FiraSans-Regular.ttf", "FiraSans-Bold.ttf"]
    expected = {
        "accents and Œ": [],
        "€, œ and signs": [],
        "any script": regular_and_bold,
        "a Greek title": regular_and_bold,
        "a component drawn alone": [],
        "Greek in the text": ["FiraSans-Regular.ttf"],
        "Greek in a heading": ["FiraSans-Bold.ttf"],
    }
    for name, files in expected.items():
        opened.clear()
        pdf = render_pdf(DOCUMENTS[name], zone=ZONE)
        assert opened == files, name
        embedded = embedded_glyph_counts(pdf)
        assert [count == whole for count, whole in zip(embedded, usual, strict=True)] == [
            file not in files for file in typeface.FILES.values()
        ], name


def test_documents_with_other_glyphs_rendered_in_turn_share_no_state():
    expected = {name: uncached(lambda d=doc: render_pdf(d, zone=ZONE)) for name, doc in DOCUMENTS.items()}
    first = {name: render_pdf(document, zone=ZONE) for name, document in DOCUMENTS.items()}
    for name in [*reversed(DOCUMENTS), *DOCUMENTS]:
        pdf = render_pdf(DOCUMENTS[name], zone=ZONE)
        assert pdf == first[name], name
        assert_draws_the_same(pdf, expected[name])


def test_a_cid_to_gid_map_compressed_once_gives_each_document_the_bytes_compressed_for_it(monkeypatch):
    with monkeypatch.context() as patch:  # each map made and compressed for its document, as before the cache
        patch.setattr(typeface, "_cid_to_gid_map", typeface._cid_to_gid_map.__wrapped__)
        fresh = {name: render_pdf(document, zone=ZONE) for name, document in DOCUMENTS.items()}
    typeface._cid_to_gid_map.cache_clear()
    for name in [*DOCUMENTS, *reversed(DOCUMENTS)]:
        assert render_pdf(DOCUMENTS[name], zone=ZONE) == fresh[name], name
    # The bold style of the first documents draws the same labels: their maps are shared.
    assert typeface._cid_to_gid_map.cache_info().hits > len(DOCUMENTS)


def test_the_letter_and_the_fee_statement_draw_the_same_as_with_fpdf2s_own_font_parsing():
    name, text = "Łukasz Œuvrard", "Douleur thoracique ≥ 3 jours, œdème ; 25 €"
    referral = SimpleNamespace(
        patient=SimpleNamespace(display_name=name, birth_date=dt.date(1948, 3, 1)),
        author=SimpleNamespace(full_name=name, rpps="10024000018"),
        target_specialist=None,
        urgency=None,
        submitted_at=None,
        created_at=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC),
        reason=text,
        current_treatment=text,
        history=text,
        free_text=name,
    )

    def letter():
        with time_machine.travel(NOW, tick=False):  # its creation date
            return referral_letter(referral, program_name="Insuffisance cardiaque", zone=ZONE)

    assert_draws_the_same(letter(), uncached(letter))
    professional = Professional(id=1, first_name="Zoé", last_name=name, profession=Profession.NURSE, rpps=None)
    line = statements.StatementLine(
        id=1,
        professional_id=1,
        act_on=dt.date(2026, 11, 23),
        code="TLL",
        label=text,
        coefficient=Decimal(1),
        amount=Decimal(12),
        status=FeeStatus.ACCRUED,
        patient_initials="LŒ",
        prescriber_rpps=None,
        prescriber_name=None,
        note=text,
    )
    statement = statements.Statement(professional, "CPTS du Pays de Vergt", statements.Period(2026, 11), (line,))

    def fee_statement():
        with time_machine.travel(NOW, tick=False):
            return statements.statement_pdf(statement, generated_on=dt.date(2026, 11, 30))

    assert_draws_the_same(fee_statement(), uncached(fee_statement))


def test_a_style_never_drawn_is_subsetted_by_fpdf2_not_embedded_as_the_usual_glyphs_font():
    def one_cell(pdf_class) -> bytes:
        pdf = pdf_class()
        pdf.set_creation_date(NOW)
        pdf.add_page()
        pdf.set_font(typeface.FAMILY, "", 11)
        pdf.cell(text="Vu ce jour.")
        return bytes(pdf.output())

    pdf = one_cell(typeface.UnicodePDF)
    usual = [len(typeface._usual_font(style).glyph_ids) for style in typeface.FILES]
    expected = one_cell(FpdfParsing)
    assert_draws_the_same(pdf, expected)
    # The regular style, drawn, embeds the usual glyphs' font; the bold, registered but not drawn (on no page),
    # fpdf2's subset of a few glyphs.
    reader = PdfReader(BytesIO(pdf))
    files = [reader.get_object(n) for n in range(1, reader.trailer["/Size"])]
    counts = sorted(
        len(TTFont(BytesIO(obj["/FontFile2"].get_object().get_data())).getGlyphOrder())
        for obj in files
        if hasattr(obj, "get") and obj.get("/Type") == "/FontDescriptor"
    )
    assert counts[-1] == max(usual)
    assert counts[0] < 5


def test_a_documents_font_measures_every_text_as_fpdf2s_font(monkeypatch):
    """The document's font measures a text from its measure one character shorter: same tuple as fpdf2's sum."""
    # Emptied several times below: a measure never depends on what was measured before.
    monkeypatch.setattr(typeface._DocumentFont, "MEASURED_LIMIT", 50)
    with fpdf2s_fonts() as fonts:
        for style, fpdf2s in fonts.items():
            ours = typeface._document_font(style, number=1)
            text = "Œdème — naïve Łukasz Ωμέγα ≥ 12,50 € \u0378 " * 3  # U+0378 is unassigned: the default width
            for size in (8, 10, 15):
                for end in [*range(len(text) + 1), *range(len(text), -1, -7)]:
                    assert ours.get_text_width(text[:end], size, None) == fpdf2s.get_text_width(text[:end], size, None)
            assert len(ours.measured) <= ours.MEASURED_LIMIT
            assert ours.biggest_size_pt == fpdf2s.biggest_size_pt == 15


def test_drawable_text_is_what_each_characters_rule_gives():
    texts = [chr(code) for code in range(0x3000)] + ["Œdème\t≥ 12,50 €\u202f✓ e\u0301 ℃ 😀 \ud800", "", "naïve"]
    for text in texts:
        normal = unicodedata.normalize("NFC", text)
        assert typeface.drawable(text) == "".join(typeface._drawable(char) for char in normal)


def test_no_font_file_is_left_to_the_garbage_collector():
    """Every font file the renderings and these tests open is closed when they are done with it: once fpdf2's glyph
    caches (which keep each font ever drawn with reachable) are emptied and the garbage collected, no file is closed
    by the collector. The Fira Sans files' ResourceWarning, ignored until then, came from a test measuring with
    fpdf2's own fonts and never closing them."""
    document = DOCUMENTS["any script"]  # both styles subsetted from the whole font files (typeface._open)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        render_pdf(document, zone=ZONE)
        uncached(lambda: render_pdf(document, zone=ZONE))
        with fpdf2s_fonts() as fonts:
            for font in fonts.values():
                font.get_text_width("Œdème Ωμέγα", 10, None)
        for style in typeface.FILES:
            typeface._document_font(style, number=1)
        SubsetMap.pick.cache_clear()
        SubsetMap.get_glyph.cache_clear()
        gc.collect()
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []
    assert open_font_files() in ([], None)
