"""UnicodePDF's own cell and measure of plain text (hub.typeface: `_plain_line`, `get_string_width`) write and
measure exactly what fpdf2's do: the same bytes for every document, and for any sequence of cells, fonts, sizes,
states, positions and texts (controls, parentheses and backslashes to escape, the page-number alias, characters the
font lacks, lines that break the page), the same content stream and the same measures."""

import datetime as dt
from contextlib import contextmanager

import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import typeface
from hub.documents.clinical import Section
from hub.documents.pdf import render_pdf
from tests import ZONE
from tests.documents.test_pdf import clinical_document
from tests.documents.test_typeface_cache import DOCUMENTS


class FpdfCells(typeface.UnicodePDF):
    """Every cell drawn and every text measured by fpdf2's own code."""

    cell = FPDF.cell
    get_string_width = FPDF.get_string_width


@contextmanager
def fpdf2s_cells():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typeface, "UnicodePDF", FpdfCells)
        yield


PIECES = st.one_of(
    st.sampled_from(list("()\\\r\n\t ée€Œ≥{}nb")),
    st.sampled_from(["{nb}", "Łukasz", "Ωμέγα", "😀", "\u200b", "\u00ad", "\u202f"]),
    st.characters(),
)
TEXTS = st.lists(PIECES, max_size=25).map("".join)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_report_is_the_same_bytes_as_with_fpdf2s_cells(name):
    with fpdf2s_cells():
        expected = render_pdf(DOCUMENTS[name], zone=ZONE)
    assert render_pdf(DOCUMENTS[name], zone=ZONE) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXTS, name=TEXTS, text=TEXTS, lines=st.integers(0, 70))
def test_any_report_is_the_same_bytes_as_with_fpdf2s_cells(title, name, text, lines):
    document = clinical_document(title=title, sections=(Section(name or "Observations", (text + "\n") * lines),))
    with fpdf2s_cells():
        expected = render_pdf(document, zone=ZONE)
    assert render_pdf(document, zone=ZONE) == expected


# Mostly the plain cells the hub draws (UnicodePDF's own), any other now and then (fpdf2's).
CELLS = st.tuples(
    st.just("cell"),
    st.sampled_from([0, 0.0, 40, 62.0, 0, 62.0, None]),
    st.sampled_from([4, 5.0, 7, 60, 5.0, None, 0]),
    TEXTS,
    st.sampled_from(["L", "L", "L", "L", "R", "C", ""]),
    st.sampled_from(["RIGHT", "LMARGIN", "RIGHT", "LMARGIN", "LEFT", "END"]),
    st.sampled_from(["TOP", "NEXT", "TOP", "NEXT", "LAST"]),
    st.sampled_from([0, 0, 0, 0, 0, 1, "B", ""]),
)
STATES = st.one_of(
    st.tuples(st.just("font"), st.sampled_from(["", "B"]), st.sampled_from([8, 10, 12.5, 15])),
    st.tuples(st.just("colour"), st.sampled_from([0, 128])),
    st.tuples(st.just("underline"), st.booleans()),
    st.tuples(st.just("spacing"), st.sampled_from([0, 0.5])),
    st.tuples(st.just("stretching"), st.sampled_from([100, 90])),
    st.tuples(st.just("ln"), st.sampled_from([None, 3])),
    st.tuples(st.just("y"), st.sampled_from([250, 280, 20])),
)
STEPS = st.lists(st.one_of(CELLS, CELLS, STATES), min_size=4, max_size=30)


def draw(pdf_class, steps) -> tuple[bytes, list[float | str]]:
    pdf = pdf_class(format="A4")
    pdf.set_creation_date(dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    pdf.alias_nb_pages()
    widths = [pdf.get_string_width("avant la page")]
    pdf.add_page()
    for step in steps:
        match step:
            case ("font", style, size):
                pdf.set_font(style=style, size=size)
            case ("cell", w, h, text, align, new_x, new_y, border):
                widths.append(pdf.get_string_width(text))
                try:
                    pdf.cell(w, h, text, border=border, align=align, new_x=new_x, new_y=new_y)
                except ValueError as refused:  # an empty text in a cell as wide as its text: refused by both
                    widths.append(str(refused))
                widths += [pdf.x, pdf.y]
            case ("colour", grey):
                pdf.set_text_color(grey)
            case ("underline", on):
                pdf.set_font(style="U" if on else "")
            case ("spacing", spacing):
                pdf.set_char_spacing(spacing)
            case ("stretching", stretching):
                pdf.set_stretching(stretching)
            case ("ln", height):
                pdf.ln(height)
            case ("y", y):
                pdf.set_y(y)
    return bytes(pdf.output()), widths


STATE_CHANGES = {
    "none": [],
    "a font set since the last text": [("font", "B", 12.5)],
    "a text colour": [("colour", 128)],
    "the text colour back": [("colour", 128), ("colour", 0)],
    "underlined": [("underline", True)],
    "char spacing": [("spacing", 0.5)],
    "stretched": [("stretching", 90)],
    "near the page's end": [("y", 280)],
    "in the footer's zone": [("y", 250), ("ln", 3)],
}
PLAIN_CELLS = [
    ("cell", 62.0, 5.0, "Nom de naissance", "L", "RIGHT", "TOP", 0),
    ("cell", 0, 5.0, "LEFÈVRE (dite « Œuvrard ») \\ 12,5 € ≥ 3 😀\u200b", "L", "LMARGIN", "NEXT", 0),
    ("cell", 0, 4, "Page {nb}", "L", "LMARGIN", "NEXT", 0),
    ("cell", 40, 7, "Ωμέγα\r\n\tfin", "L", "RIGHT", "NEXT", 0),
]


@pytest.mark.parametrize("change", STATE_CHANGES)
def test_plain_cells_after_any_state_change_write_what_fpdf2s_do(change):
    steps = [*STATE_CHANGES[change], *PLAIN_CELLS, *STATE_CHANGES[change], *PLAIN_CELLS]
    assert draw(typeface.UnicodePDF, steps) == draw(FpdfCells, steps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_any_cells_write_and_measure_what_fpdf2s_do(steps):
    assert draw(typeface.UnicodePDF, steps) == draw(FpdfCells, steps)
