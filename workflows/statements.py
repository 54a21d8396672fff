"""What the fee pages need beyond the ledger: the 20 % télésoin share of one professional or of a whole
CPTS at once, the coordinator's overview, and the monthly activity a professional declares or imports.

The CPTS's shares are computed in a constant number of queries (P6): the IDELs and kinés, their télésoin
sums grouped in one query, their declared months in another; the arithmetic is `fees.remote_share`'s.
"""

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import Date, bindparam, func, select
from sqlalchemy.orm import Session

from hub.errors import RuleViolation, ValidationFailed
from hub.formatting import MONTHS
from hub.models import DeclaredActivity, FeeEntry, Profession, Professional
from hub.services import statements
from hub.services.statements import Period, Total
from scheduling import board
from workflows import fees

SHARE_PROFESSIONS = tuple(fees.REMOTE_CARE_CODES)
MAX_IMPORT_LINES = 240  # twenty years of months
MAX_MONTHLY_AMOUNT = Decimal("10000000")


def has_remote_share(professional: Professional) -> bool:
    return professional.profession in fees.REMOTE_CARE_CODES


# --- the 20 % share ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareWindow:
    first: dt.date
    last: dt.date

    @property
    def months(self) -> list[tuple[int, int]]:
        months, year, month = [], self.first.year, self.first.month
        while (year, month) <= (self.last.year, self.last.month):
            months.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months


def share_window(*, today: dt.date, year: int | None = None) -> ShareWindow:
    """The rolling year ending today, or a calendar year (up to today when it is the current one)."""
    if year is None:
        return ShareWindow(*fees.rolling_year(today))
    if year > today.year:
        raise ValidationFailed({"year": "Cette année n'a pas encore commencé."})
    return ShareWindow(dt.date(year, 1, 1), min(dt.date(year, 12, 31), today))


def professional_share(session: Session, professional: Professional, window: ShareWindow) -> fees.RemoteShare | None:
    """The professional's share over the window, or None for a profession the 20 % does not concern."""
    if not has_remote_share(professional):
        return None
    return fees.remote_share(session, professional.id, first=window.first, last=window.last)


def remote_shares(session: Session, professional_ids: list[int], window: ShareWindow) -> dict[int, fees.RemoteShare]:
    """`fees.remote_share` for many professionals in two queries."""
    if not professional_ids:
        return {}
    remote = dict(
        session.execute(
            select(FeeEntry.professional_id, func.sum(FeeEntry.amount))
            .where(
                FeeEntry.professional_id.in_(professional_ids),
                FeeEntry.is_remote_care.is_(True),
                FeeEntry.status.in_(fees.LIVE),
                # The window written into the SQL: a generic plan of the prepared statement, not knowing it, walks
                # the index row by row, 8.5 ms against 1.9 ms at 30 CPTS (bench/README.md, P6 fee statements).
                FeeEntry.act_on >= bindparam(None, window.first, type_=Date, literal_execute=True),
                FeeEntry.act_on <= bindparam(None, window.last, type_=Date, literal_execute=True),
            )
            .group_by(FeeEntry.professional_id)
        ).all()
    )
    months = window.months
    (first_year, first_month), (last_year, last_month) = months[0], months[-1]
    declared: dict[int, dict[tuple[int, int], Decimal]] = {}
    for row in session.execute(
        select(DeclaredActivity.professional_id, DeclaredActivity.year, DeclaredActivity.month, DeclaredActivity.amount)
        .where(DeclaredActivity.professional_id.in_(professional_ids))
        .where(
            (DeclaredActivity.year * 100 + DeclaredActivity.month).between(
                first_year * 100 + first_month, last_year * 100 + last_month
            )
        )
    ):
        declared.setdefault(row.professional_id, {})[(row.year, row.month)] = Decimal(row.amount)
    return {
        professional_id: _share(Decimal(remote.get(professional_id) or 0), declared.get(professional_id, {}), months)
        for professional_id in professional_ids
    }


def _share(remote: Decimal, declared: dict[tuple[int, int], Decimal], months) -> fees.RemoteShare:
    # As fees.remote_share: undeclared months are estimated from the average of the declared ones.
    if not declared:
        return fees.RemoteShare(remote, None, estimated=True)
    average = sum(declared.values(), Decimal(0)) / len(declared)
    total = sum((declared.get(month, average) for month in months), Decimal(0))
    return fees.RemoteShare(remote, total, estimated=len(declared) < len(months))


def declared_months(session: Session, professional: Professional, window: ShareWindow) -> dict:
    """The professional's declared (or imported) months of the window, by (year, month)."""
    (first_year, first_month), (last_year, last_month) = window.months[0], window.months[-1]
    rows = session.scalars(
        select(DeclaredActivity).where(
            DeclaredActivity.professional_id == professional.id,
            (DeclaredActivity.year * 100 + DeclaredActivity.month).between(
                first_year * 100 + first_month, last_year * 100 + last_month
            ),
        )
    )
    return {(row.year, row.month): row for row in rows}


@dataclass(frozen=True)
class ActivityMonth:
    year: int
    month: int
    declared: DeclaredActivity | None
    a_year_before: DeclaredActivity | None

    @property
    def label(self) -> str:
        return f"{MONTHS[self.month - 1]} {self.year}"

    @property
    def key(self) -> str:
        """As the declaration form names the month: `2026-11`."""
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class ActivityOverview:
    """What the declaration form shows: each month of the rolling year, the most recent first, with what was
    declared for it and for the same month a year before; and last calendar year's declared total."""

    window: ShareWindow
    months: list[ActivityMonth]
    last_year: int
    last_year_total: Decimal
    last_year_months: int  # how many months of last year were declared

    @property
    def suggested(self) -> ActivityMonth:
        """The month the form proposes: the most recent complete month not declared yet, else the current one."""
        return next((month for month in self.months[1:] if month.declared is None), self.months[0])


def activity_overview(session: Session, professional: Professional, *, today: dt.date) -> ActivityOverview:
    """One query: the declared months of the rolling year ending today and of the twelve months before it."""
    window = ShareWindow(*fees.rolling_year(today))
    earlier = ShareWindow(dt.date(window.first.year - 1, window.first.month, 1), window.last)
    rows = declared_months(session, professional, earlier)
    last_year = [row for (year, _month), row in rows.items() if year == today.year - 1]
    return ActivityOverview(
        window=window,
        months=[
            ActivityMonth(year, month, rows.get((year, month)), rows.get((year - 1, month)))
            for year, month in reversed(window.months)
        ],
        last_year=today.year - 1,
        last_year_total=sum((row.amount for row in last_year), Decimal(0)),
        last_year_months=len(last_year),
    )


# --- a pharmacist's assistance of teleconsultations ------------------------------------------------------


@dataclass(frozen=True)
class PharmacyAssistance:
    """What a pharmacist sees of their work in the officine: the teleconsultations they accompany (the next ones,
    and those done in the year with the doctor who consulted) and the year's TLM against its blocks and its cap."""

    professional: Professional
    sessions: board.AssistedSessions
    fees: fees.BlockProgress


def is_pharmacist(professional: Professional | None) -> bool:
    return professional is not None and professional.profession is Profession.PHARMACIST


def pharmacy_assistance(
    session: Session, professional: Professional, *, now: dt.datetime, zone: str, year: int | None = None
) -> PharmacyAssistance:
    """The pharmacist's sessions and TLM of a calendar year of the territory (this one by default), at the
    tariff in force at its end (today for this year)."""
    today = fees.local_day(now, zone)
    year = today.year if year is None else year
    if year > today.year:
        raise ValidationFailed({"year": "Cette année n'a pas encore commencé."})
    bounds = (fees.month_bounds(year, 1, zone)[0], fees.month_bounds(year, 12, zone)[1])
    day = min(dt.date(year, 12, 31), today)
    return PharmacyAssistance(
        professional=professional,
        sessions=board.assisted_sessions(session, professional.id, now=now, year=bounds),
        fees=fees.block_progress(session, professional, fees.PHARMACY_ASSISTANCE_CODE, day=day),
    )


# --- the coordinator's overview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareRow:
    professional_id: int
    name: str
    profession_label: str
    share: fees.RemoteShare


@dataclass(frozen=True)
class CptsOverview:
    period: Period
    by_profession: list[Total]
    by_code: list[Total]
    by_professional: list[statements.ProfessionalTotal]
    caps: list[statements.CapReached]
    window: ShareWindow
    watched: list[ShareRow]  # at 15 % or over, the highest first
    undeclared: list[ShareRow]  # no activity declared: the share cannot be computed
    share_count: int  # IDELs and kinés of the CPTS

    @property
    def total(self) -> Decimal:
        return sum((total.amount for total in self.by_profession), Decimal(0))

    @property
    def act_count(self) -> int:
        return sum(total.count for total in self.by_profession)


def cpts_overview(session: Session, cpts_id: int, period: Period, *, today: dt.date) -> CptsOverview:
    """The CPTS's fees of the period by profession, by act and by professional, the caps reached, and the
    IDELs and kinés near or over the 20 % share over the twelve months ending with the period (or today):
    four queries."""
    window = ShareWindow(*fees.rolling_year(min(period.last, today)))
    totals = statements.cpts_totals(session, cpts_id, period)
    professionals = session.scalars(
        select(Professional)
        .where(Professional.cpts_id == cpts_id, Professional.profession.in_(SHARE_PROFESSIONS))
        .order_by(Professional.last_name, Professional.first_name)
    ).all()
    shares = remote_shares(session, [p.id for p in professionals], window)
    rows = [ShareRow(p.id, p.full_name, p.profession_label, shares[p.id]) for p in professionals]
    watched = [row for row in rows if row.share.level in ("alerte", "depasse")]
    return CptsOverview(
        period=period,
        by_profession=totals.by_profession,
        by_code=totals.by_code,
        by_professional=totals.by_professional,
        caps=totals.caps,
        window=window,
        watched=sorted(watched, key=lambda row: row.share.share or 0, reverse=True),  # watched: a share is known
        undeclared=[row for row in rows if row.share.total_amount is None and row.share.remote_amount > 0],
        share_count=len(rows),
    )


# --- declared activity ------------------------------------------------------------------------------------


def declare_month(
    session: Session, actor, professional: Professional, *, year: int, month: int, amount: Decimal, today: dt.date
) -> DeclaredActivity:
    """Declare (or correct) the professional's conventioned activity of a month that has begun."""
    _check_declarable(professional, year, month, today)
    return fees.declare_activity(session, actor, professional, year=year, month=month, amount=amount)


def _check_declarable(professional: Professional, year: int, month: int, today: dt.date) -> None:
    if not has_remote_share(professional):
        raise RuleViolation(
            "La déclaration d'activité sert au calcul de la part de télésoin : elle ne concerne que les "
            "infirmier·es et les masseurs-kinésithérapeutes."
        )
    if (year, month) > (today.year, today.month):
        raise ValidationFailed({"month": f"{MONTHS[month - 1].capitalize()} {year} n'a pas encore commencé."})


def import_activity(
    session: Session, actor, professional: Professional, content: bytes, *, today: dt.date
) -> list[DeclaredActivity]:
    """Import monthly totals from a billing software's CSV (`année;mois;montant`, a header line allowed):
    every line is checked first, and nothing is recorded unless all are right."""
    months = parse_activity_csv(content)
    for year, month, _amount in months:
        try:
            _check_declarable(professional, year, month, today)
        except ValidationFailed as exc:
            raise ValidationFailed({"file": exc.errors["month"]}) from exc
    return [
        fees.declare_activity(session, actor, professional, year=year, month=month, amount=amount, source="imported")
        for year, month, amount in months
    ]


def parse_activity_csv(content: bytes) -> list[tuple[int, int, Decimal]]:
    """(year, month, amount) per line; a French error naming the line otherwise."""
    text = _decode(content)
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=";") if any(cell.strip() for cell in row)]
    if rows and not rows[0][0].strip().isdigit():
        rows = rows[1:]  # the header line
    if not rows:
        raise ValidationFailed({"file": "Le fichier ne contient aucune ligne année;mois;montant."})
    if len(rows) > MAX_IMPORT_LINES:
        raise ValidationFailed({"file": f"Au plus {MAX_IMPORT_LINES} lignes par fichier."})
    months, seen, errors = [], set(), []
    for number, row in enumerate(rows, start=1):
        try:
            parsed = _activity_row(row)
        except ValueError as exc:
            errors.append(f"ligne {number} : {exc}")
            continue
        if parsed[:2] in seen:
            errors.append(f"ligne {number} : ce mois figure déjà plus haut dans le fichier")
        seen.add(parsed[:2])
        months.append(parsed)
    if errors:
        shown = " ; ".join(errors[:5]) + (" ; …" if len(errors) > 5 else "")
        raise ValidationFailed({"file": f"Fichier refusé, rien n'a été enregistré — {shown}."})
    return months


def _decode(content: bytes) -> str:
    if b"\x00" in content:
        raise ValidationFailed({"file": "Ce fichier n'est pas un fichier texte CSV."})
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")  # the older billing software's export


def _activity_row(row: list[str]) -> tuple[int, int, Decimal]:
    if len(row) != 3:
        raise ValueError("trois colonnes attendues (année;mois;montant)")
    year_text, month_text, amount_text = (cell.strip() for cell in row)
    if not (year_text.isdigit() and 2000 <= int(year_text) <= 2100):
        raise ValueError("année invalide")
    if not (month_text.isdigit() and 1 <= int(month_text) <= 12):
        raise ValueError("mois invalide (1 à 12)")
    return int(year_text), int(month_text), parse_amount(amount_text)


def parse_amount(text: str) -> Decimal:
    """`1 234,50`, `1234.5` or `1 234,50 €` as a non-negative amount in euros."""
    cleaned = text.replace("€", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace(",", ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("montant invalide") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_MONTHLY_AMOUNT:
        raise ValueError("montant invalide")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("montant au centime près attendu")
    return amount.quantize(Decimal("0.01"))
