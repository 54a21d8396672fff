"""The CPTS's indicators of a year as the PDF a coordinator hands to the ARS and the CPAM for the annual review:
each indicator's title, how it is computed, its chart (the page's own SVG) and its table. Counts, rates and
amounts only: nothing in it names a patient or a professional."""

import datetime as dt
import io

from hub.charts import with_font
from hub.formatting import figure, french_datetime

CHART_WIDTH = 180.0  # mm: the A4 page's width within its margins


def review_pdf(review, charts: dict[str, str], *, made_at: dt.datetime, zone: str) -> bytes:
    """`review` is a workflows.indicators.Review; `charts` its SVG charts by indicator key."""
    from hub.typeface import FAMILY, UnicodePDF  # only the renderings need fpdf2

    class Pages(UnicodePDF):
        def footer(self) -> None:  # fpdf calls it at the bottom of every page
            self.set_y(-15)
            self.set_font(size=8)
            self.cell(w=0, h=4, text=f"{review.title} — page {self.page_no()}/{{nb}}", align="C")

    pdf = Pages(format="A4")
    pdf.set_creation_date(made_at)
    pdf.set_title(review.title)
    pdf.set_author("Hub CPTS")
    pdf.set_creator("Hub CPTS")
    pdf.set_lang("fr-FR")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font(style="B", size=15)
    pdf.multi_cell(0, 7, review.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(size=9)
    pdf.multi_cell(0, 5, f"Établi par le hub le {french_datetime(made_at, zone)}.", new_x="LMARGIN", new_y="NEXT")
    for indicator in review.indicators:
        chart = charts.get(indicator.key)
        _indicator(pdf, indicator, with_font(chart, FAMILY) if chart else None)
    return bytes(pdf.output())


def _indicator(pdf, indicator, chart: str | None) -> None:
    pdf.ln(4)
    pdf.set_font(style="B", size=12)
    pdf.multi_cell(0, 7, indicator.title, border="B", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(size=8)
    pdf.multi_cell(0, 4, indicator.how, new_x="LMARGIN", new_y="NEXT")
    if chart is not None:
        if pdf.will_page_break(CHART_WIDTH * 340 / 720):
            pdf.add_page()
        pdf.image(io.BytesIO(chart.encode()), w=CHART_WIDTH)
    pdf.set_font(size=8)
    with pdf.table(text_align="LEFT", first_row_as_headings=True, line_height=4.5) as table:
        table.row([str(column) for column in indicator.columns])
        for row in indicator.rows:
            table.row([figure(value) for value in row])
