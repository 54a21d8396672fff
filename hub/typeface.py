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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Literal

from fontTools import subset  # type: ignore[import-untyped]  # fpdf2's own dependency
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import Align, CharVPos, TextMode, XPos, YPos
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import (
    CIDSystemInfo,
    OutputProducer,
    PDFFont,
    PDFFontStream,
    _build_cmap_blocks,
    _tt_font_widths,
)
from fpdf.syntax import Name, PDFArray, PDFContentStream

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
# punctuation, super- and subscripts (SpO₂) and the signs of reports. A style of a document drawn with these alone
# embeds a font of their ~430 glyphs (`_usual_font`), prepared once, instead of a subset of the whole font's 2,708.
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

    def cell(
        self,
        w: float | None = None,
        h: float | None = None,
        text: str = "",
        border: Literal[0, 1] | str = 0,
        ln: Literal["DEPRECATED"] = "DEPRECATED",
        align: str | Align = Align.L,
        fill: bool = False,
        link: str | int | None = "",
        center: bool = False,
        markdown: bool = False,
        new_x: str | XPos = XPos.RIGHT,
        new_y: str | YPos = YPos.TOP,
    ) -> bool:
        """fpdf2's cell; a line of plain text, as every cell of the hub's documents but their page number, written
        as fpdf2 writes it (`_plain_line`) without the fragments, graphics states and loop fpdf2 goes through for any
        cell: ~55 µs each, 30-odd a report, a third of its rendering (bench/README.md, P7's worker)."""
        if not (border == 0 and ln == "DEPRECATED" and not (fill or link or center or markdown)) or w is None or not h:
            return super().cell(w, h, text, border, ln, align, fill, link, center, markdown, new_x, new_y)
        new_x, new_y = XPos.coerce(new_x), YPos.coerce(new_y)
        line = self._plain_line(w, h, text, Align.coerce(align), new_x, new_y)
        if line is None:
            return super().cell(w, h, text, border, ln, align, fill, link, center, markdown, new_x, new_y)
        if not self.current_font_is_set_on_page:  # a font set since the last text: fpdf2 writes it first
            assert self.current_font is not None  # _plain_line drew with it
            self._out(self._set_font_for_page(self.current_font, self.font_size_pt))
        self._out(line)
        self._lasth = h
        if new_x is XPos.RIGHT:
            self.x += w or self.w - self.r_margin - self.x
        else:
            self.x = self.l_margin
        if new_y is YPos.NEXT:
            self.y += h
        return False

    def _plain_line(self, w: float, h: float, text: str, align: Align, new_x: XPos, new_y: YPos) -> str | None:
        """The content-stream line fpdf2's cell writes for `text` on one line from the current position, when the
        text is plain: left-aligned, not empty, without the page-number alias, drawn in the current font and state
        with nothing to change (colour, rise, text mode) and no page break to make; None otherwise (fpdf2's cell
        draws it)."""
        text = self.normalize_text(text)
        font = self.current_font
        if (
            align is not Align.L
            or new_x not in (XPos.RIGHT, XPos.LMARGIN)
            or new_y not in (YPos.TOP, YPos.NEXT)
            or not text
            or (self.str_alias_nb_pages and self.str_alias_nb_pages in text)
            or not self._plain_state()
            or self.will_page_break(h)
        ):
            return None
        assert isinstance(font, TTFFont)
        font.get_text_width(text, self.font_size_pt, None)  # as fpdf2's measures: the font's biggest size in use
        mapped = "".join(chr(code) for code in map(font.subset.pick, map(ord, text)) if code)
        k, left = self.k, self.x + self.c_margin
        top = self.h - self.y - 0.5 * h - 0.3 * self.font_size
        return f"BT {left * k:.2f} {top * k:.2f} Td ({font.escape_text(mapped)}) Tj ET"

    def _plain_state(self) -> bool:
        """Drawing now changes nothing in the page's graphics state but, at most, the font set on the page: fpdf2's
        cell would write the text alone."""
        return (
            self.page > 0
            and isinstance(self.current_font, TTFFont)  # fpdf2's is_ttf_font, which mypy cannot narrow by
            and not self.text_shaping
            and not self._fallback_font_ids
            and not self._record_text_quad_points
            and not self.current_font.is_symbol
            and self.font_size >= 1
            and self.char_vpos is CharVPos.LINE
            and self.text_mode is TextMode.FILL
            and not (self.underline or self.strikethrough)
            and self.text_color == self.fill_color
        )

    def get_string_width(self, s: str, normalized: bool = False, markdown: bool = False) -> float:
        """fpdf2's measure; of plain text, the font's own (what fpdf2 sums over the text's one fragment)."""
        text = s if normalized else self.normalize_text(s)
        if (
            markdown
            or not text
            or (self.str_alias_nb_pages and self.str_alias_nb_pages in text)
            or not self._plain_state()
            or self.font_stretching != 100
            or self.char_spacing
        ):
            return super().get_string_width(text, normalized=True, markdown=markdown)
        assert isinstance(self.current_font, TTFFont)  # _plain_state's
        return self.current_font.get_text_width(text, self.font_size_pt, None)[1] / self.k

    def set_title(self, title: str) -> None:
        super().set_title(drawable(title))

    def set_author(self, author) -> None:
        super().set_author(drawable(author))


# The glyphs of a font's subset before anything is drawn with it.
UNDRAWN = frozenset({".notdef", "space"})


class _UsualGlyphsOutput(OutputProducer):
    """fpdf2's output, which subsets each font in place, except that a style whose glyphs are all among the usual
    ones embeds the usual glyphs' font prepared once per process (`_usual_font`): subsetting and compiling a
    font for each document was two thirds of a rendering's CPU. Any other style is subsetted from the whole font by
    fpdf2, as before. Here the last footer and the page numbers are drawn: no glyph can come after."""

    def _add_fonts(self, *args):
        font_objs: dict = {}
        fonts = self.fpdf.fonts
        every_font = dict(fonts)
        try:
            for key, font in sorted(every_font.items(), key=lambda item: item[1].i):
                style = key.removeprefix(FAMILY)
                if isinstance(font, TTFFont) and style in FILES:
                    usual = _usual_font(style)
                    drawn = set(font.subset.get_all_glyph_names())
                    # A style registered but never drawn holds only what every font holds: fpdf2's subset of it
                    # is a few kB where the usual glyphs' font is 25.
                    if drawn - UNDRAWN and usual.glyph_ids.keys() >= drawn:
                        font_objs[font.i] = self._add_usual_font(font, usual)
                        continue
                    font.ttfont.close()
                    font.ttfont = _open(FILES[style])
                # fpdf2 embeds every font of the document's registry in one loop: the others are given to it one at
                # a time, in its order, so that the objects keep the numbers they had.
                fonts.clear()
                fonts[key] = font
                font_objs.update(super()._add_fonts(*args))
        finally:
            fonts.clear()
            fonts.update(every_font)
        return font_objs

    def _add_usual_font(self, font: TTFFont, usual: "_UsualFont") -> PDFFont:
        """The objects fpdf2 adds for a TrueType font, in its order, with the same codes, widths and ToUnicode map;
        only the font file and the codes' glyph ids in it (CIDToGIDMap) are the usual glyphs' font's."""
        fontname = f"MPDFAA+{font.name}"
        composite_font_obj = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
        self._add_pdf_obj(composite_font_obj, "fonts")
        cid_font_obj = PDFFont(
            subtype="CIDFontType2", base_font=fontname, d_w=font.desc.missing_width, w=_tt_font_widths(font)
        )
        self._add_pdf_obj(cid_font_obj, "fonts")
        composite_font_obj.descendant_fonts = PDFArray([cid_font_obj])
        to_unicode_obj = PDFContentStream(_to_unicode_cmap(font).encode("latin-1"))
        self._add_pdf_obj(to_unicode_obj, "fonts")
        composite_font_obj.to_unicode = to_unicode_obj
        cid_system_info_obj = CIDSystemInfo()
        self._add_pdf_obj(cid_system_info_obj, "fonts")
        cid_font_obj.c_i_d_system_info = cid_system_info_obj
        font_descriptor_obj = font.desc
        font_descriptor_obj.font_name = Name(fontname)
        self._add_pdf_obj(font_descriptor_obj, "fonts")
        cid_font_obj.font_descriptor = font_descriptor_obj
        drawn = [(code, usual.glyph_ids[glyph.glyph_name]) for glyph, code in font.subset.items() if glyph is not None]
        glyph_ids = tuple(sorted(drawn))
        # Each document's copy gets its own object number, as the font file's below.
        cid_to_gid_map_obj = copy.copy(_cid_to_gid_map(glyph_ids))
        self._add_pdf_obj(cid_to_gid_map_obj, "fonts")
        cid_font_obj.c_i_d_to_g_i_d_map = cid_to_gid_map_obj
        # The font file's stream was compressed once; each document's copy gets its own object number.
        font_file_obj = copy.copy(usual.font_file)
        self._add_pdf_obj(font_file_obj, "fonts")
        font_descriptor_obj.font_file2 = font_file_obj  # type: ignore[attr-defined]  # as fpdf2 sets it
        # What fpdf2 does once a font is embedded: its glyph caches are per class, not per document.
        font.subset.pick.cache_clear()
        font.subset.get_glyph.cache_clear()
        font.close()
        return composite_font_obj


@lru_cache(maxsize=1024)
def _cid_to_gid_map(glyph_ids: tuple[tuple[int, int], ...]) -> PDFContentStream:
    """The CIDToGIDMap stream of a font whose codes draw these glyph ids (code, id), compressed once per set of
    codes: compressing its 128 kB (mostly zeros) took ~0.34 ms, two of a report's ~5 ms of rendering, and a style's
    codes repeat from one document to the next (the bold one's are the labels, the same in most reports)."""
    cid_to_gid_map = bytearray(2 * 0x10000)
    for code, glyph_id in glyph_ids:
        cid_to_gid_map[2 * code : 2 * code + 2] = glyph_id.to_bytes(2, "big")
    return PDFContentStream(contents=cid_to_gid_map, compress=True)


def _to_unicode_cmap(font: TTFFont) -> str:
    """fpdf2's ToUnicode map of a font's codes, without its surrogate pairs: Fira Sans maps no character beyond the
    Basic Multilingual Plane."""
    bf_char = [
        f"<{code:04X}> <{''.join(f'{unicode:04X}' for unicode in glyph.unicode)}>\n"
        for glyph, code in font.subset.items()
        if glyph is not None and isinstance(glyph.unicode, tuple) and glyph.unicode
    ]
    return (
        "/CIDInit /ProcSet findresource begin\n"
        "12 dict begin\n"
        "begincmap\n"
        "/CIDSystemInfo\n"
        "<</Registry (Adobe)\n"
        "/Ordering (UCS)\n"
        "/Supplement 0\n"
        ">> def\n"
        "/CMapName /Adobe-Identity-UCS def\n"
        "/CMapType 2 def\n"
        "1 begincodespacerange\n"
        "<0000> <FFFF>\n"
        "endcodespacerange\n"
        f"{_build_cmap_blocks(bf_char, 'bfchar')}"
        "endcmap\n"
        "CMapName currentdict /CMap defineresource pop\n"
        "end\n"
        "end"
    )


def _document_font(style: str, *, number: int) -> TTFFont:
    """The font as `add_font` would make it, from the widths, cmap and metrics parsed once per process.

    Reading them for every document (1,700 glyphs, one fontTools lookup each) cost ~7 ms of CPU. What the document's
    output mutates is its own: the fontTools font (subsetted in place, then closed), the used-glyph map, the
    font descriptor (given its object id, name and font stream) and the widths (a defaultdict grows on reading).
    The fontTools font is only read when fpdf2 subsets it at output (no shaping, no colour glyphs): until then, and
    for a style that embeds the usual glyphs' font, the usual glyphs' one, opened lazily and closed unread."""
    parsed = _parsed_font(style)
    font = _DocumentFont.copied_from(parsed)
    font.i = number
    font.ttfont = TTFont(BytesIO(_usual_font(style).data), recalcTimestamp=False, lazy=True)
    font.cw = parsed.cw.copy()
    font.glyph_ids = dict(parsed.glyph_ids)
    font.desc = copy.copy(parsed.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    return font


class _DocumentFont(TTFFont):
    """A document's font, measuring text as fpdf2 does (the sum of its characters' widths, in the same order) but
    from the measure of the same text one character shorter when it has one. fpdf2's line breaking measures the
    whole line again for each character it adds, one Python step a character of the line."""

    __slots__ = ("measured",)
    measured: dict[str, float]
    # Units of the texts measured so far (a few hundred per document); emptied when full, never wrong.
    MEASURED_LIMIT = 4096

    @classmethod
    def copied_from(cls, parsed: TTFFont) -> "_DocumentFont":
        font = cls.__new__(cls)
        for name in TTFFont.__slots__:
            if hasattr(parsed, name):
                setattr(font, name, getattr(parsed, name))
        font.measured = {}
        return font

    def get_text_width(self, text: str, font_size_pt: float, text_shaping_params: dict | None) -> tuple[int, float]:
        if text_shaping_params or self.is_symbol:
            return super().get_text_width(text, font_size_pt, text_shaping_params)
        if font_size_pt > self.biggest_size_pt:
            self.biggest_size_pt = font_size_pt
        return len(text), self._units(text) * font_size_pt * 0.001

    def _units(self, text: str) -> float:
        units = self.measured.get(text)
        if units is None:
            shorter = self.measured.get(text[:-1]) if text else None
            # Adding the last width to the shorter text's sum is the step fpdf2's sum() takes last: same value.
            units = sum(self.cw[ord(char)] for char in text) if shorter is None else shorter + self.cw[ord(text[-1])]
            if len(self.measured) >= self.MEASURED_LIMIT:
                self.measured.clear()
            self.measured[text] = units
        return units


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


@dataclass(frozen=True)
class _UsualFont:
    data: bytes
    font_file: PDFFontStream
    glyph_ids: Mapping[str, int]


@cache
def _usual_font(style: str) -> _UsualFont:
    """The font cut down to the glyphs of the USUAL characters and their components, as fpdf2 would embed it for a
    document that drew them all (its subsetting options; the tables it also drops are not in Fira Sans or already
    dropped), its font stream compressed once, and each glyph's id in it. The glyphs are asked for by name as fpdf2
    does, not by character, so every character of a glyph keeps its cmap entry (µ and μ share one)."""
    ttfont = _open(FILES[style])
    cmap = ttfont.getBestCmap()
    subsetter = subset.Subsetter(subset.Options(notdef_outline=True, recommended_glyphs=True))
    usual_glyphs = {cmap[code] for code in USUAL if code in cmap}
    # _to_unicode_cmap writes each code as four hex digits, without fpdf2's surrogate pairs.
    assert all(code <= 0xFFFF for code, name in cmap.items() if name in usual_glyphs), "a usual glyph beyond the BMP"
    subsetter.populate(glyphs=sorted(usual_glyphs))
    subsetter.subset(ttfont)
    glyph_ids = {name: ttfont.getGlyphID(name) for name in ttfont.getGlyphOrder()}
    data = BytesIO()
    ttfont.save(data)
    ttfont.close()
    return _UsualFont(data.getvalue(), PDFFontStream(data.getvalue()), glyph_ids)


@cache
def font_file(name: str) -> Path:
    # The package is installed as files (a wheel, unzipped), so its resources are plain paths.
    return Path(str(resources.files(FONT_PACKAGE) / "files" / name))


def drawable(text: str | None) -> str:
    """`text` in NFC with each character the font cannot draw replaced (see the module); idempotent."""
    text = unicodedata.normalize("NFC", text or "")
    # fpdf2 asks for every cell and every measure: nearly every text is drawn as it is, which one set test says.
    if _drawn_as_is().issuperset(text):
        return text
    return "".join(_drawable(char) for char in text)


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
def _drawn_as_is() -> frozenset[str]:
    """The characters `_drawable` leaves as they are."""
    return frozenset(char for char in map(chr, _codepoints() | {ord("\n")}) if _drawable(char) == char)


@cache
def _codepoints() -> frozenset[int]:
    """The characters both styles draw."""
    sets = []
    for name in FILES.values():
        with TTFont(font_file(name), lazy=True) as font:
            sets.append(frozenset(font.getBestCmap()))
    return frozenset.intersection(*sets) - {0}
