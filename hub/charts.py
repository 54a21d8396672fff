"""Bar charts of the indicators as SVG, drawn by pygal on the server: the page shows them inline and the annual PDF
embeds them, so they need no JavaScript. pygal styles its charts with a <style> sheet and adds a tooltip script,
which the hub's CSP (no inline style or script) would block: both are taken out, and the colours, strokes and fonts
are written as SVG presentation attributes, which the CSP allows and fpdf2 understands. Ids go too (two charts on
one page must not share one). The chart is an image for assistive technologies: the table under it says the same."""

import sys
from collections.abc import Sequence
from xml.etree.ElementTree import Element, tostring

import pygal
from defusedxml.ElementTree import fromstring  # fpdf2's dependency

from hub.xmltext import xml_text

# pygal puts on sys.meta_path a legacy import hook for its map plugins (unused here), without find_spec: Python
# then fails on the import of any module that is not installed (fpdf2 tries its optional uharfbuzz). Taken off.
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__module__ != "pygal"]

SVG = "http://www.w3.org/2000/svg"
# Okabe–Ito: told apart by colour-blind readers, and each dark enough against white for its bar.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000")
FONT_SIZE = 12
FONT_FAMILY = "Helvetica, Arial, sans-serif"
TEXT = {"fill": "#212529", "font-family": FONT_FAMILY, "font-size": str(FONT_SIZE)}
WIDTH, HEIGHT = 720, 340


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]]) -> str:
    """A grouped bar chart: one group per category, one bar per series; the SVG as text."""
    chart = pygal.Bar(
        width=WIDTH,
        height=HEIGHT,
        js=[],
        disable_xml_declaration=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        x_label_rotation=20 if len(categories) > 4 else 0,
        truncate_label=-1,
        truncate_legend=-1,
        margin=12,
        margin_bottom=28,  # pygal underestimates the height of turned labels: the legend would be cut
        style=pygal.style.Style(
            label_font_size=FONT_SIZE, major_label_font_size=FONT_SIZE, legend_font_size=FONT_SIZE, font_family="sans"
        ),
        spacing=8,
    )
    # Labels can be names typed in the hub (a program's): without the characters XML forbids, or the SVG would not
    # parse back.
    chart.x_labels = [xml_text(category) for category in categories]
    for name, values in series:
        chart.add(xml_text(name), [None if value is None else float(value) for value in values])
    return _self_contained(chart.render(is_unicode=True), title)


def _self_contained(svg: str, title: str) -> str:
    root = fromstring(svg)
    for parent in list(root.iter()):
        for child in list(parent):
            if _dropped(child):
                parent.remove(child)
    _paint(root, anchor="start")
    root.attrib.pop("id", None)
    root.set("xmlns", SVG)
    root.set("role", "img")
    root.set("aria-label", title)
    root.set("class", "indicator-chart")
    root.set("width", str(WIDTH))
    root.set("height", str(HEIGHT))
    return tostring(root, encoding="unicode")


def _tag(element: Element) -> str:
    return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""


def _classes(element: Element) -> set[str]:
    return set(element.get("class", "").split())


def _dropped(element: Element) -> bool:
    """pygal's style sheet and script, its tooltip layer, its hidden value notes and its default title."""
    return _tag(element) in {"defs", "desc", "title", "script", "style"} or "tooltip-overlay" in _classes(element)


def _paint(element: Element, *, anchor: str) -> None:
    """Colours, strokes and fonts as attributes; `anchor` is the text alignment of the axis the element is in: the
    labels of the y axis end at their tick, those of the x axis (turned a little when many) are centred on theirs."""
    classes = _classes(element)
    element.attrib.pop("id", None)
    element.attrib.pop("style", None)
    if "axis" in classes:
        anchor = "end" if "y" in classes else "middle"
    tag = element.tag = _tag(element)  # plain names: ElementTree would write its own prefixes otherwise
    if tag == "rect" and "background" in classes:
        element.set("fill", "#ffffff")
    elif tag == "path":
        element.set("fill", "none")
        element.set("stroke", "#6c757d" if {"axis", "major"} & classes else "#dee2e6")
    elif tag == "text":
        for name, value in TEXT.items():
            element.set(name, value)
        element.set("text-anchor", anchor)
    color = next((c for c in classes if c.startswith("color-")), None)
    if color is not None:
        fill = PALETTE[int(color.removeprefix("color-")) % len(PALETTE)]
        for target in element.iter():
            if _tag(target) == "rect":
                target.set("fill", fill)
    for child in element:
        _paint(child, anchor=anchor)


def with_font(svg: str, family: str) -> str:
    """The chart's text in another font family: a PDF draws it with its own embedded font (the standard PDF fonts
    have no « € »)."""
    return svg.replace(f'font-family="{FONT_FAMILY}"', f'font-family="{family}"')
