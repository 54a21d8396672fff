"""Reading back the PDFs the hub renders. Their text is drawn in an embedded TrueType subset, glyph ids rather
than characters: pypdf parses the file (strictly: a malformed one fails the test) and maps the glyphs back
through each font's ToUnicode table."""

import io

from pypdf import PdfReader


def pdf_reader(data: bytes) -> PdfReader:
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return PdfReader(io.BytesIO(data), strict=True)


def pdf_text(data: bytes) -> str:
    """The text of every page, as a reader extracts it."""
    return "\n".join(page.extract_text() for page in pdf_reader(data).pages)


def pdf_lines(data: bytes) -> list[str]:
    """The text of each cell the pages draw (a wrapped cell gives one entry a line), in drawing order."""
    lines: list[str] = []

    def visit(text, *_position) -> None:
        if text.strip():
            lines.append(text.strip())

    for page in pdf_reader(data).pages:
        page.extract_text(visitor_text=visit)
    return lines
