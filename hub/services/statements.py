"""Fee statements: a professional's acts for a month or a year with their totals, as a page, a CSV that a
billing software can import and a printable PDF; the CPTS's totals by profession and by act, and the caps
reached.

Every function here runs a fixed number of queries whatever the size of the ledger (P6): a statement is one
query (the professional's entries of the period, with the tariff's label and the patient's initials joined
in); the CPTS totals are grouped in the database. Patients appear by their initials only: the names never
leave the database.
"""

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Date, Integer, and_, bindparam, case, func, select
from sqlalchemy.orm import Session, aliased

from hub.formatting import MONTHS, euros, french_date
from hub.models import (
    FEE_STATUS_LABELS,
    PROFESSION_LABELS,
    FeeEntry,
    FeeStatus,
    Organisation,
    Patient,
    Profession,
    Professional,
    Tariff,
)

LIVE = (FeeStatus.ACCRUED, FeeStatus.DECLARED, FeeStatus.PAID)
# workflows.fees records a capped act at zero with a note that starts so (the block notes of pharmacist
# assistance do not: they are not caps). tests/services/test_statements.py holds the two together.
CAP_NOTE_PREFIX = "Plafond"
CSV_COLUMNS = ("date", "code", "coefficient", "montant", "statut", "patient (initiales)", "prescripteur RPPS", "note")


@dataclass(frozen=True)
class Period:
    """A calendar month of the territory, or a whole year when `month` is None."""

    year: int
    month: int | None = None

    @property
    def first(self) -> dt.date:
        return dt.date(self.year, self.month or 1, 1)

    @property
    def last(self) -> dt.date:
        if self.month is None or self.month == 12:
            return dt.date(self.year, 12, 31)
        return dt.date(self.year, self.month + 1, 1) - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        return f"{MONTHS[self.month - 1]} {self.year}" if self.month else f"année {self.year}"

    @property
    def slug(self) -> str:
        return f"{self.year}-{self.month:02d}" if self.month else str(self.year)


@dataclass(frozen=True)
class StatementLine:
    id: int
    professional_id: int
    act_on: dt.date
    code: str
    label: str
    coefficient: Decimal
    amount: Decimal
    status: FeeStatus
    patient_initials: str | None
    prescriber_rpps: str | None
    prescriber_name: str | None  # the remote doctor of an accompaniment, as the directory of the CPTS names them
    note: str | None

    @property
    def status_label(self) -> str:
        return FEE_STATUS_LABELS[self.status]

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    @property
    def is_capped(self) -> bool:
        return self.amount == 0 and (self.note or "").startswith(CAP_NOTE_PREFIX)


@dataclass(frozen=True)
class Total:
    key: str
    label: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class Statement:
    professional: Professional
    cpts_name: str
    period: Period
    lines: tuple[StatementLine, ...]

    @property
    def live_lines(self) -> list[StatementLine]:
        return [line for line in self.lines if line.is_live]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.live_lines), Decimal(0))

    @property
    def by_status(self) -> list[Total]:
        return _totals(self.lines, key=lambda line: line.status.value, label=lambda line: line.status_label)

    @property
    def by_code(self) -> list[Total]:
        return _totals(self.live_lines, key=lambda line: line.code, label=lambda line: line.label)

    @property
    def capped(self) -> list[StatementLine]:
        return [line for line in self.live_lines if line.is_capped]


def _totals(lines, *, key, label) -> list[Total]:
    groups: dict[str, list[StatementLine]] = {}
    for line in lines:
        groups.setdefault(key(line), []).append(line)
    return [
        Total(name, label(group[0]), len(group), sum((line.amount for line in group), Decimal(0)))
        for name, group in sorted(groups.items())
    ]


# --- reading the ledger ----------------------------------------------------------------------------------


def _lines_query(cpts_id: int):
    """The entries of a CPTS with their label and their patient's initials. The joined rows are the CPTS's
    (a constant the planner can use): a hash join over every patient of the region would grow with it."""
    first_name = func.coalesce(Patient.used_first_name, Patient.first_birth_given_name)
    last_name = func.coalesce(Patient.used_last_name, Patient.birth_name)
    prescriber = aliased(Professional, name="prescriber")
    return (
        select(
            FeeEntry.id,
            FeeEntry.professional_id,
            FeeEntry.act_on,
            FeeEntry.code,
            Tariff.label,
            FeeEntry.coefficient,
            FeeEntry.amount,
            FeeEntry.status,
            func.substr(first_name, 1, 1).label("first_initial"),
            func.substr(last_name, 1, 1).label("last_initial"),
            FeeEntry.prescriber_rpps,
            prescriber,
            func.coalesce(FeeEntry.cancel_reason, FeeEntry.note).label("note"),
        )
        .join(Tariff, Tariff.id == FeeEntry.tariff_id)
        .outerjoin(Patient, and_(Patient.id == FeeEntry.patient_id, Patient.cpts_id == cpts_id))
        .outerjoin(prescriber, and_(prescriber.rpps == FeeEntry.prescriber_rpps, prescriber.cpts_id == cpts_id))
        .where(FeeEntry.cpts_id == cpts_id)
    )


def _line(row) -> StatementLine:
    initials = f"{row.first_initial}.{row.last_initial}.".upper() if row.first_initial else None
    return StatementLine(
        id=row.id,
        professional_id=row.professional_id,
        act_on=row.act_on,
        code=row.code,
        label=row.label,
        coefficient=Decimal(row.coefficient),
        amount=Decimal(row.amount),
        status=FeeStatus(row.status),
        patient_initials=initials,
        prescriber_rpps=row.prescriber_rpps,
        prescriber_name=row.prescriber.full_name if row.prescriber else None,
        note=row.note,
    )


def statement(session: Session, professional: Professional, period: Period) -> Statement:
    """The professional's entries of the period in date order (cancelled ones included, outside the totals):
    two queries whatever the size of the ledger."""
    rows = session.execute(
        _lines_query(professional.cpts_id)
        .where(
            FeeEntry.professional_id == professional.id,
            FeeEntry.act_on >= period.first,
            FeeEntry.act_on <= period.last,
        )
        .order_by(FeeEntry.act_on, FeeEntry.id)
    )
    lines = tuple(_line(row) for row in rows)
    cpts_name = session.scalar(select(Organisation.name).where(Organisation.id == professional.cpts_id)) or ""
    return Statement(professional, cpts_name, period, lines)


def list_fees(
    session: Session,
    visible: ColumnElement[bool],
    *,
    cpts_id: int,
    professional_id: int | None = None,
    first: dt.date | None = None,
    last: dt.date | None = None,
    code: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[StatementLine], int]:
    """One page of the entries of the CPTS that the caller may see (`visible`, a WHERE clause), and their count."""
    conditions = [visible, FeeEntry.cpts_id == cpts_id]
    if professional_id is not None:
        conditions.append(FeeEntry.professional_id == professional_id)
    if first is not None:
        conditions.append(FeeEntry.act_on >= first)
    if last is not None:
        conditions.append(FeeEntry.act_on <= last)
    if code:
        conditions.append(FeeEntry.code == code)
    total = session.execute(select(func.count(FeeEntry.id)).where(*conditions)).scalar_one()
    rows = session.execute(
        _lines_query(cpts_id)
        .where(*conditions)
        .order_by(FeeEntry.act_on, FeeEntry.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return [_line(row) for row in rows], total


# --- the CPTS ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfessionalTotal:
    professional_id: int
    name: str
    profession_label: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class CapReached:
    professional_id: int
    professional_name: str
    profession_label: str
    code: str
    count: int
    last_on: dt.date


@dataclass(frozen=True)
class CptsTotals:
    by_profession: list[Total]
    by_code: list[Total]
    by_professional: list[ProfessionalTotal]
    caps: list[CapReached]  # per professional and code, the acts recorded at zero because a cap was reached


def cpts_totals(session: Session, cpts_id: int, period: Period) -> CptsTotals:
    """The CPTS's live acts of the period by profession, by code and by professional, and the caps reached:
    one query, grouped by professional and tariff version (a few hundred rows at most), summed up here."""
    capped = and_(FeeEntry.amount == 0, FeeEntry.note.startswith(CAP_NOTE_PREFIX))
    grouped = (
        select(
            FeeEntry.professional_id,
            FeeEntry.code,
            FeeEntry.tariff_id,
            func.count(FeeEntry.id).label("count"),
            func.sum(FeeEntry.amount).label("amount"),
            func.sum(case((capped, 1), else_=0)).label("capped"),
            func.max(case((capped, FeeEntry.act_on))).label("last_capped_on"),
        )
        .where(*_live_in_cpts(cpts_id, period))
        .group_by(FeeEntry.professional_id, FeeEntry.code, FeeEntry.tariff_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Professional.id,
            Professional.first_name,
            Professional.last_name,
            Professional.profession,
            Tariff.label,
            grouped.c.code,
            grouped.c.count,
            grouped.c.amount,
            grouped.c.capped,
            grouped.c.last_capped_on,
        )
        .join(Professional, Professional.id == grouped.c.professional_id)
        .join(Tariff, Tariff.id == grouped.c.tariff_id)
        .order_by(Professional.last_name, Professional.first_name, Professional.id, grouped.c.code)
    ).all()
    return _sum_up(rows)


def _live_in_cpts(cpts_id: int, period: Period) -> list:
    """The CPTS and the dates are written into the SQL rather than bound: from its sixth execution psycopg
    runs a statement prepared, and PostgreSQL may then use a generic plan that, not knowing the dates,
    expects a handful of rows where a CPTS's year has thousands, and picks a plan several times slower."""
    return [
        FeeEntry.cpts_id == _inline(cpts_id, Integer),
        FeeEntry.act_on >= _inline(period.first, Date),
        FeeEntry.act_on <= _inline(period.last, Date),
        FeeEntry.status.in_(LIVE),
    ]


def _inline(value, type_):
    return bindparam(None, value, type_=type_, literal_execute=True)


def _sum_up(rows) -> CptsTotals:
    professions, codes = _Sums[str, str](), _Sums[str, str]()
    professionals = _Sums[int, tuple[str, str]]()  # the key is the professional's id, the label (name, profession)
    caps: dict[tuple[int, str], CapReached] = {}
    for professional_id, first_name, last_name, profession, label, code, count, amount, capped, last_on in rows:
        name, profession_label = f"{first_name} {last_name.upper()}", PROFESSION_LABELS[Profession(profession)]
        professions.add(Profession(profession).value, profession_label, count, amount)
        codes.add(code, label, count, amount)
        professionals.add(professional_id, (name, profession_label), count, amount)
        if capped:  # a code's versions come one after the other: add them up
            before = caps.get((professional_id, code))
            if before is not None:
                capped, last_on = capped + before.count, max(last_on, before.last_on)
            caps[(professional_id, code)] = CapReached(professional_id, name, profession_label, code, capped, last_on)
    return CptsTotals(
        by_profession=sorted(_totals_of(professions), key=lambda total: total.key),
        by_code=sorted(_totals_of(codes), key=lambda total: total.key),
        by_professional=[
            ProfessionalTotal(professional_id, name, profession_label, count, amount)
            for professional_id, (name, profession_label), count, amount in professionals.groups()  # by name
        ],
        caps=list(caps.values()),
    )


K = TypeVar("K")
L = TypeVar("L")


class _Sums(Generic[K, L]):
    """Counts and amounts added up per key, in the order the keys first came; a key keeps its first label."""

    def __init__(self) -> None:
        self._groups: dict[K, tuple[L, int, Decimal]] = {}

    def add(self, key: K, label: L, count: int, amount) -> None:
        _label, total_count, total_amount = self._groups.get(key, (label, 0, Decimal(0)))
        self._groups[key] = (_label, total_count + count, total_amount + Decimal(amount or 0))

    def groups(self) -> list[tuple[K, L, int, Decimal]]:
        return [(key, label, count, amount) for key, (label, count, amount) in self._groups.items()]


def _totals_of(sums: _Sums[str, str]) -> list[Total]:
    return [Total(key, label, count, amount) for key, label, count, amount in sums.groups()]


# --- files ----------------------------------------------------------------------------------------------


def decimal_fr(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'))}".replace(".", ",")


def _cell(text: str | None) -> str:
    """Free text as data: a cell that a spreadsheet would take for a formula is quoted (CSV injection)."""
    text = (text or "").replace("\r", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def statement_csv(statement: Statement) -> bytes:
    """The statement for a billing software: `;`-separated, UTF-8 with a BOM, decimal comma, dates as
    JJ/MM/AAAA, one act per line (cancelled acts included, with their status)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        writer.writerow(
            (
                line.act_on.strftime("%d/%m/%Y"),
                line.code,
                decimal_fr(line.coefficient),
                decimal_fr(line.amount),
                line.status_label,
                line.patient_initials or "",
                line.prescriber_rpps or "",
                _cell(line.note),
            )
        )
    return buffer.getvalue().encode("utf-8-sig")


def csv_filename(statement: Statement) -> str:
    return f"releve-{statement.professional.rpps or statement.professional.id}-{statement.period.slug}.csv"


def pdf_filename(statement: Statement) -> str:
    return csv_filename(statement).removesuffix(".csv") + ".pdf"


def statement_pdf(statement: Statement, *, generated_on: dt.date) -> bytes:
    """A printable A4 statement in French: the professional, the acts, the totals by act and by status."""
    from hub.typeface import UnicodePDF  # only the PDF download needs fpdf2

    class Pages(UnicodePDF):
        def footer(self) -> None:  # fpdf calls it at the bottom of every page
            _pdf_footer(self, statement, generated_on)

    pdf = Pages(orientation="landscape", format="A4")
    pdf.set_title(f"Relevé d'actes et de rémunérations — {statement.period.label}")
    pdf.set_author("Hub CPTS")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.alias_nb_pages()
    pdf.add_page()
    _pdf_heading(pdf, statement)
    _pdf_totals(pdf, statement)
    _pdf_lines(pdf, statement)
    return bytes(pdf.output())


def _pdf_heading(pdf, statement: Statement) -> None:
    professional = statement.professional
    pdf.set_font(style="B", size=15)
    pdf.cell(text=f"Relevé d'actes et de rémunérations — {statement.period.label}")
    pdf.ln(9)
    pdf.set_font(size=10)
    for text in (
        f"{professional.full_name} — {professional.profession_label}",
        f"RPPS : {professional.rpps or 'non renseigné'} — {statement.cpts_name}",
        f"Période : du {french_date(statement.period.first)} au {french_date(statement.period.last)}",
    ):
        pdf.cell(text=text)
        pdf.ln(5)
    pdf.ln(3)


# Landscape A4 less its margins: 277 mm. The acts' labels are listed with the totals by act, which leaves the
# notes (cap reasons) room to be read whole.
PDF_COLUMNS = (
    ("Date", 20, "L"),
    ("Code", 13, "L"),
    ("Coef.", 13, "R"),
    ("Montant", 22, "R"),
    ("Statut", 17, "L"),
    ("Patient", 15, "L"),
    ("Prescripteur", 24, "L"),
    ("Note", 153, "L"),
)
PDF_LINE = 4.5


def _pdf_lines(pdf, statement: Statement) -> None:
    """One row per act, the header repeated on each page. Plain cells rather than fpdf's table, whose
    layout engine costs some 8 ms a row: only a note too long for its column is wrapped."""
    pdf.set_font(style="B", size=11)
    pdf.cell(text="Détail des actes")
    pdf.ln(6)
    if not statement.lines:
        pdf.set_font(size=9)
        pdf.cell(text="Aucun acte sur la période.")
        pdf.ln(8)
        return
    _pdf_row(pdf, [name for name, _, _ in PDF_COLUMNS], style="B")
    for line in statement.lines:
        cells = [
            line.act_on.strftime("%d/%m/%Y"),
            line.code,
            decimal_fr(line.coefficient),
            euros(line.amount),
            line.status_label,
            line.patient_initials or "",
            line.prescriber_rpps or "",
            line.note or "",
        ]
        _pdf_row(pdf, cells)
    pdf.ln(4)


def _pdf_row(pdf, cells: list[str], *, style: str = "") -> None:
    pdf.set_font(style=style, size=8)
    *fixed, (_, note_width, _) = PDF_COLUMNS
    note = cells[-1]
    wraps = pdf.get_string_width(note) > note_width - 2 * pdf.c_margin
    note_lines = pdf.multi_cell(note_width, PDF_LINE, note, dry_run=True, output="LINES") if wraps else [note]
    height = PDF_LINE * len(note_lines)
    if pdf.will_page_break(height):
        pdf.add_page()
        if not style:
            _pdf_row(pdf, [name for name, _, _ in PDF_COLUMNS], style="B")
            pdf.set_font(size=8)
    for text, (_, width, align) in zip(cells, fixed, strict=False):
        pdf.cell(w=width, h=height, text=text, border="B", align=align)
    for number, text in enumerate(note_lines):
        last = number == len(note_lines) - 1
        pdf.cell(w=note_width, h=PDF_LINE, text=text, border="B" if last else 0)
        pdf.ln(PDF_LINE)
        if not last:
            pdf.set_x(pdf.l_margin + sum(width for _, width, _ in fixed))


def _pdf_totals(pdf, statement: Statement) -> None:
    pdf.set_font(style="B", size=11)
    headline = f"Total hors actes annulés : {euros(statement.total)} ({_acts(len(statement.live_lines))})"
    pdf.cell(text=headline)
    pdf.ln(7)
    pdf.set_font(size=9)
    by_code = [f"{total.key} — {total.label}" for total in statement.by_code]
    by_status = [total.label for total in statement.by_status]
    for title, names, totals in (
        ("Par acte", by_code, statement.by_code),
        ("Par statut", by_status, statement.by_status),
    ):
        pdf.cell(text=title)
        pdf.ln(5)
        for name, total in zip(names, totals, strict=True):
            pdf.cell(text=f"    {name} : {_acts(total.count)}, {euros(total.amount)}")
            pdf.ln(5)
    pdf.ln(4)


def _acts(count: int) -> str:
    return f"{count} acte{'s' if count > 1 else ''}"


def _pdf_footer(pdf, statement: Statement, generated_on: dt.date) -> None:
    pdf.set_y(-12)
    pdf.set_font(size=8)
    text = f"{statement.professional.full_name} — {statement.period.label} — édité le {french_date(generated_on)}"
    pdf.cell(text=text)
    pdf.cell(text=f"Page {pdf.page_no()}/{{nb}}", align="R", w=0)
