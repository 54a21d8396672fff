"""Reading back the PDFs the hub renders. Their text is drawn in an embedded TrueType subset, glyph ids rather
than characters: pypdf parses the file (strictly: a malformed one fails the test) and maps the glyphs back
through each font's ToUnicode table."""

import io
import os
from pathlib import Path

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


def open_font_files() -> list[str] | None:
    """The font package's files this process holds open, read from Linux's /proc (None where there is none). A
    fontTools font opened lazily from a path keeps its file open until closed; an fpdf2 font never output stays
    reachable from its SubsetMap's glyph caches, which are per class, until another document's output empties them,
    so the garbage collector closed the file (ResourceWarning) in whichever test came next."""
    from hub import typeface  # fpdf2 and fontTools, loaded only where fonts are looked at

    descriptors = Path("/proc/self/fd")
    if not descriptors.is_dir():
        return None
    paths = []
    for descriptor in descriptors.iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:  # the listing's own descriptor, closed since
            continue
        if typeface.FONT_PACKAGE in target:
            paths.append(target)
    return paths
