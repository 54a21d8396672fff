"""The one font of every PDF the hub renders, and the text it can draw.

Fira Sans (SIL Open Font License 1.1, shipped by the fontpkg-fira-sans package, a dependency: a fresh install
has it, nothing is read from the system). It covers Latin with its extensions, Greek, Cyrillic and the signs
reports hold (≥ ≤ € → • … ± µ °); the standard PDF fonts stop at Windows-1252, so a "Łukasz" or a "≥" in a
referral used to stop the rendering. A character the font lacks is never an error: a control or formatting
character is dropped, a compatibility form drawn as its plain one (℃ as °C), and anything else (an emoji, an
unassigned code point, a lone surrogate from a JSON body) as a visible "?". The same text always gives the
same glyphs, so a rendering stays deterministic.

Import it inside the rendering functions (hub.documents.pdf, hub.services.statements): fpdf2 is loaded only
when a PDF is made."""

import copy
import unicodedata
from functools import cache
from importlib import resources
from io import BytesIO
from pathlib import Path

from fontTools import subset  # type: ignore[import-untyped]  # fpdf2's own dependency
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer

FAMILY = "fira-sans"
FONT_PACKAGE = "fontpkg_fira_sans"
FILES = {"": "FiraSans-Regular.ttf", "B": "FiraSans-Bold.ttf"}
PLACEHOLDER = "?"
LAYOUT_TABLES = {"GDEF", "GPOS", "GSUB"}
# Signs that free text holds (pasted from a word processor) and the font lacks: their nearest sign it has.
FALLBACKS = {
    "\t": "    ",
    "\u202f": "\u00a0",  # the narrow no-break space of French dates and amounts
    "\u2028": "\n",
    "\u2029": "\n",
    "●": "•",
    "◦": "•",
    "▪": "•",
    "■": "•",
    "‣": "•",
    "⇒": "=>",
    "⩽": "≤",
    "⩾": "≥",
    "′": "'",
    "″": '"',
    "✓": "v",
    "✔": "v",
}
# The characters of nearly every French document: Latin-1, Latin Extended-A (Œ, Ł, ğ), Romanian Ș Ț, typographic
# punctuation, super- and subscripts (SpO₂) and the signs of reports. A document drawn with these alone is subsetted
# from a font of their ~450 glyphs (`_usual_font`) instead of the whole font's 2,708.
USUAL_BLOCKS = (
    range(0x20, 0x7F),
    range(0xA0, 0x180),
    range(0x218, 0x21C),
    range(0x2010, 0x2028),
    range(0x2030, 0x203B),
    range(0x2070, 0x20A0),
    [ord(char) for char in "€№™←↑→↓−≈≠≤≥"],
)
USUAL = frozenset(code for block in USUAL_BLOCKS for code in block)


class UnicodePDF(FPDF):
    """An FPDF whose text, wherever it is drawn or measured, goes through `drawable` in the hub's font."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_typeface()
        self.set_font(FAMILY, size=10)

    def add_typeface(self) -> None:
        for style in FILES:
            self.fonts[FAMILY + style] = _document_font(style, number=len(self.fonts) + 1)

    def output(self, *args, **kwargs):
        return super().output(*args, output_producer_class=_UsualGlyphsOutput, **kwargs)

    def normalize_text(self, text: str) -> str:
        # fpdf2 calls it for every cell, multi_cell, write and width measurement: no call site can forget it.
        return super().normalize_text(drawable(text))

    def set_title(self, title: str) -> None:
        super().set_title(drawable(title))

    def set_author(self, author) -> None:
        super().set_author(drawable(author))


class _UsualGlyphsOutput(OutputProducer):
    """fpdf2's output, which subsets each font in place, from the usual glyphs' font when it holds all the glyphs
    the document drew: here the last footer and the page numbers are drawn, no glyph can come after."""

    def bufferize(self) -> bytearray:
        for style in FILES:
            font = self.fpdf.fonts.get(FAMILY + style)
            if isinstance(font, TTFFont) and not _usual_font(style)[1].issuperset(font.subset.get_all_glyph_names()):
                font.ttfont.close()
                font.ttfont = _open(FILES[style])
        return super().bufferize()


def _document_font(style: str, *, number: int) -> TTFFont:
    """The font as `add_font` would make it, from the widths, cmap and metrics parsed once per process.

    Reading them for every document (1,700 glyphs, one fontTools lookup each) cost ~7 ms of CPU. What the document's
    output mutates is its own: the fontTools font (subsetted in place, then closed), the used-glyph map, the
    font descriptor (given its object id, name and font stream) and the widths (a defaultdict grows on reading).
    The fontTools font is only read at output (no shaping, no colour glyphs): the usual glyphs' one until then."""
    parsed = _parsed_font(style)
    font = copy.copy(parsed)
    font.i = number
    font.ttfont = TTFont(BytesIO(_usual_font(style)[0]), recalcTimestamp=False, lazy=True)
    font.cw = parsed.cw.copy()
    font.glyph_ids = dict(parsed.glyph_ids)
    font.desc = copy.copy(parsed.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    return font


@cache
def _parsed_font(style: str) -> TTFFont:
    """fpdf2's own parsing of the font, never drawn with: `_document_font` copies it."""
    scratch = FPDF()
    scratch.add_font(FAMILY, style, font_file(FILES[style]))
    font = scratch.fonts[FAMILY + style]
    assert isinstance(font, TTFFont)
    font.close()
    return font


def _open(name: str) -> TTFont:
    """The file as fpdf2 opens it (lazily, its timestamp kept)."""
    ttfont = TTFont(font_file(name), recalcTimestamp=False, lazy=True)
    # Without text shaping the layout tables are never read, and fpdf2 leaves them out of the embedded subset;
    # dropping them here spares decompiling them at output, a third of a rendering.
    for tag in LAYOUT_TABLES & set(ttfont.keys()):
        del ttfont[tag]
    return ttfont


@cache
def _usual_font(style: str) -> tuple[bytes, frozenset[str]]:
    """The font cut down to the glyphs of the USUAL characters, and those glyphs' names.

    fpdf2's subsetting (fontTools, its options) then gives the same bytes from it as from the whole font, for
    any glyphs among those asked for here (tests/documents/test_typeface_cache.py): it keeps the glyphs asked
    for and their components, the cmap entries of the glyphs asked for, and recomputes the rest from them. A
    component alone (the combining comma below of Ș) has lost its cmap entry here: a document drawing it is
    subsetted from the whole font. The glyphs are asked for by name as fpdf2 does, not by character, so every
    character of a glyph keeps its cmap entry (µ and μ share one); their names stay for fpdf2 to find them by."""
    ttfont = _open(FILES[style])
    cmap = ttfont.getBestCmap()
    asked = frozenset({cmap[code] for code in USUAL if code in cmap} | {ttfont.getGlyphOrder()[0]})
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(glyphs=sorted(asked))
    subsetter.subset(ttfont)
    data = BytesIO()
    ttfont.save(data)
    ttfont.close()
    return data.getvalue(), asked


@cache
def font_file(name: str) -> Path:
    # The package is installed as files (a wheel, unzipped), so its resources are plain paths.
    return Path(str(resources.files(FONT_PACKAGE) / "files" / name))


def drawable(text: str | None) -> str:
    """`text` in NFC with each character the font cannot draw replaced (see the module); idempotent."""
    return "".join(_drawable(char) for char in unicodedata.normalize("NFC", text or ""))


def _drawable(char: str) -> str:
    if char == "\n":
        return char
    if char in FALLBACKS:
        return FALLBACKS[char]
    category = unicodedata.category(char)
    if category in ("Cc", "Cf"):  # controls, zero-width and bidirectional marks: nothing to draw
        return ""
    glyphs = _codepoints()
    if ord(char) in glyphs:
        return char
    folded = unicodedata.normalize("NFKD", char)
    if folded != char and all(ord(part) in glyphs for part in folded):
        return folded
    return PLACEHOLDER


@cache
def _codepoints() -> frozenset[int]:
    """The characters both styles draw."""
    sets = []
    for name in FILES.values():
        with TTFont(font_file(name), lazy=True) as font:
            sets.append(frozenset(font.getBestCmap()))
    return frozenset.intersection(*sets) - {0}
