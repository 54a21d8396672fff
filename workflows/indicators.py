"""The territory's indicators for the CPTS's annual review (ACI contract, HAS self-evaluation of télésoin): what
the hub computes from its own records, per Paris calendar month or year, per program, per profession and for the
whole CPTS. Each indicator is one SQL aggregate (GROUP BY, conditional sums), so that the number of queries does
not depend on the data (P6). Periods are local: their bounds are computed here in the territory's zone and the
queries compare UTC instants to them, which reads the same on SQLite and PostgreSQL (23:30 on 31 December, Paris
time, belongs to that year: T11)."""

import csv
import datetime as dt
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from hub.db import UTCDateTime
from hub.errors import NotFound
from hub.formatting import MONTHS, figure
from hub.models import (
    PROFESSION_LABELS,
    AppointmentKind,
    AppointmentState,
    Attendance,
    DeclaredActivity,
    Delivery,
    FeeEntry,
    FeeStatus,
    GpSearch,
    GpSearchState,
    IncidentKind,
    Patient,
    Profession,
    Professional,
    Referral,
    Report,
    SessionProgram,
    TeleexpertiseState,
    WaitingEntry,
    WaitingState,
)
from hub.models import Appointment as A
from hub.models import SatisfactionSurvey as Survey
from hub.models import SessionIncident as Incident
from hub.models import TeleexpertiseRequest as T

MONTH_NAMES = MONTHS
REMOTE_KINDS = (AppointmentKind.ASSISTED_TELECONSULTATION, AppointmentKind.TELESOIN)
HELD = (AppointmentState.DONE, AppointmentState.DEGRADED)
LIVE_FEES = (FeeStatus.ACCRUED, FeeStatus.DECLARED, FeeStatus.PAID)
SHARE_PROFESSIONS = (Profession.NURSE, Profession.PHYSIOTHERAPIST)
SHARE_WARNING = Decimal("0.15")
SHARE_BANDS = (
    (Decimal("0.05"), "Moins de 5 %"),
    (Decimal("0.10"), "De 5 à 10 %"),
    (Decimal("0.15"), "De 10 à 15 %"),
    (Decimal("0.20"), "De 15 à 20 %"),
    (None, "Plus de 20 %"),
)
SATISFIED_TOTAL = 9  # three scores out of 4 summing to at least 9: an average of 3, « plutôt bien » or better
# Below this many answers in the period and program, no share or mean is shown: one or two answers would be read as
# those patients' own (a coordinator knows who was seen that month).
MIN_ANSWERS_SHOWN = 5
SESSION_COLUMNS = (
    "Programmées",
    "Réalisées",
    "Annulées à temps",
    "Annulées tardivement",
    "Patient absent",
    "Mode dégradé",
)
ALL_CPTS = "Toute la CPTS"
UNKNOWN_PROGRAM = "Programme inconnu dans cette CPTS."


class seconds_between(FunctionElement):
    """Seconds from the first instant to the second, as a float: the one dialect-specific expression here."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between)
def _seconds_postgresql(element, compiler, **kw):
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element, compiler, **kw):
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


# --- the period and the filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A calendar year of the territory's zone, or one month of it."""

    year: int
    month: int | None
    zone: str

    @property
    def months(self) -> list[int]:
        return [self.month] if self.month else list(range(1, 13))

    def month_start(self, month: int) -> dt.datetime:
        year, month = (self.year + 1, 1) if month == 13 else (self.year, month)
        return dt.datetime(year, month, 1, tzinfo=ZoneInfo(self.zone)).astimezone(dt.UTC)

    @property
    def start(self) -> dt.datetime:
        return self.month_start(self.months[0])

    @property
    def end(self) -> dt.datetime:
        return self.month_start(self.months[-1] + 1)

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.months[0], 1)

    @property
    def last_day(self) -> dt.date:
        return self.end.astimezone(ZoneInfo(self.zone)).date() - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        return f"{MONTH_NAMES[self.month - 1]} {self.year}" if self.month else f"année {self.year}"

    def month_of(self, instant) -> ColumnElement[int]:
        """The local month (1–12) an instant column falls in, as a CASE over the UTC bounds of the months."""
        return case(*((instant < self.month_start(month + 1), month) for month in self.months), else_=literal(None))


@dataclass(frozen=True)
class Scope:
    """What the indicators count: one CPTS, one period, one program or all.

    The CPTS and the period's bounds are written into the SQL rather than bound: from its sixth execution psycopg
    runs a statement prepared, and PostgreSQL may then use a generic plan that, not knowing them, expects a
    handful of rows where a CPTS's year has thousands (bench/README.md, P6). SQLite keeps the bound instants: its
    text storage of instants is the type's business (hub.db.UTCDateTime)."""

    cpts_id: int
    period: Period
    program_id: int | None = None
    inline_instants: bool = False  # set by `compute` on PostgreSQL

    @property
    def cpts(self):
        return bindparam(None, self.cpts_id, type_=Integer, literal_execute=True)

    def day(self, value: dt.date):
        return bindparam(None, value, type_=Date, literal_execute=True)

    def within(self, instant) -> list:
        return [instant >= self._instant(self.period.start), instant < self._instant(self.period.end)]

    def _instant(self, value: dt.datetime):
        if not self.inline_instants:
            return value
        return literal_column(f"TIMESTAMPTZ '{value.isoformat()}'", UTCDateTime())  # our own UTC bound, no input

    def sessions(self) -> list:
        """The CPTS's sessions that begin in the period, of the chosen program if one is."""
        conditions = [A.cpts_id == self.cpts, *self.within(A.starts_at)]
        if self.program_id is not None:
            conditions.append(A.program_id == self.program_id)
        return conditions


# --- what the page, the API and the exports show ----------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """One table of figures: its rows start with a label; `how` says in French how it is computed."""

    key: str
    title: str
    how: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    chart: bool = True  # False: figures of different kinds, which a chart would not make clearer than the table
    summary_rows: int = 0  # the last rows sum up the others (the whole CPTS…): in the table, not in the chart
    chart_columns: tuple[str, ...] | None = None  # the columns drawn, when not all of them

    @property
    def chart_series(self) -> tuple[list[str], list[tuple[str, list]]]:
        """The categories (row labels) and the series (column label, values) a bar chart of the table draws."""
        rows = self.rows[: len(self.rows) - self.summary_rows]
        columns = self.chart_columns or self.columns[1:]
        series = [(column, [row[self.columns.index(column)] for row in rows]) for column in columns]
        return [str(row[0]) for row in rows], series

    def value(self, row_label: str, column: str):
        """The figure at a row and a column (by their labels)."""
        row = next(row for row in self.rows if row[0] == row_label)
        return row[self.columns.index(column)]


def compute(session: Session, scope: Scope) -> list[Indicator]:
    """Every indicator of the scope: a constant number of queries, whatever the data (P6)."""
    scope = replace(scope, inline_instants=session.get_bind().dialect.name == "postgresql")
    return [
        sessions_by_month(session, scope),
        sessions_by(session, scope, by="program"),
        sessions_by(session, scope, by="profession"),
        delays(session, scope),
        teleexpertise(session, scope),
        telesoin_share(session, scope),
        fees_by_code(session, scope),
        satisfaction(session, scope),
        incidents(session, scope),
        patients_without_gp(session, scope),
        waiting_time(session, scope),
        gp_search_list(session, scope),
        attendance_outcomes(session, scope),
    ]


def _session_counts():
    state = A.state
    return (
        func.count(A.id),
        func.sum(case((state == AppointmentState.DONE, 1), else_=0)),
        func.sum(case((and_(state == AppointmentState.CANCELLED, A.is_late_cancellation.is_(False)), 1), else_=0)),
        func.sum(case((and_(state == AppointmentState.CANCELLED, A.is_late_cancellation.is_(True)), 1), else_=0)),
        func.sum(case((state == AppointmentState.NO_SHOW, 1), else_=0)),
        func.sum(case((state == AppointmentState.DEGRADED, 1), else_=0)),
    )


SESSIONS_HOW = (
    "Rendez-vous (téléconsultations assistées, télésoin, présentiel) dont le début tombe dans la période, heure de "
    "Paris : programmés quel que soit leur état, puis par état actuel — réalisés, annulés plus de 24 h avant "
    "(« à temps ») ou moins de 24 h avant (« tardivement »), patient absent noté par un professionnel, et passés "
    "au téléphone (mode dégradé)."
)


def _counts(row: Sequence) -> tuple[int, ...]:
    return tuple(int(value or 0) for value in row)


def _with_total(rows: list[tuple]) -> tuple[tuple, ...]:
    total = tuple(sum(row[i] for row in rows) for i in range(1, len(SESSION_COLUMNS) + 1))
    return (*rows, (ALL_CPTS, *total))


def sessions_by_month(session: Session, scope: Scope) -> Indicator:
    month = scope.period.month_of(A.starts_at).label("month")
    found = {
        row.month: _counts(row[1:])
        for row in session.execute(select(month, *_session_counts()).where(*scope.sessions()).group_by(month))
    }
    empty = (0,) * len(SESSION_COLUMNS)
    rows = [(MONTH_NAMES[m - 1], *found.get(m, empty)) for m in scope.period.months]
    return Indicator(
        "seances_par_mois",
        "Séances par mois",
        SESSIONS_HOW,
        ("Mois", *SESSION_COLUMNS),
        _with_total(rows),
        summary_rows=1,
    )


def sessions_by(session: Session, scope: Scope, *, by: str) -> Indicator:
    """Sessions per program (its name) or per profession of the performer (the specialist, the kiné…). The
    sessions are counted first on the CPTS's period (its index), then joined to their label: a join first would
    let the planner walk every CPTS's programs or professionals."""
    column = A.program_id if by == "program" else A.performer_id
    counts = (
        select(column.label("key"), *(count.label(f"n{i}") for i, count in enumerate(_session_counts())))
        .where(*scope.sessions())
        .group_by(column)
        .subquery()
    )
    sums = [func.sum(counts.c[f"n{i}"]) for i in range(len(SESSION_COLUMNS))]
    if by == "program":
        title, header = "Séances par programme", "Programme"
        query = (
            select(SessionProgram.name, *sums)
            .select_from(counts)
            .join(SessionProgram, SessionProgram.id == counts.c.key)
            .group_by(SessionProgram.name)
        )
    else:
        title, header = "Séances par profession de l'effecteur", "Profession"
        query = (
            select(Professional.profession, *sums)
            .select_from(counts)
            .join(Professional, Professional.id == counts.c.key)
            .group_by(Professional.profession)
        )
    rows = sorted(  # by label, in Python: the databases' collations do not sort accents alike
        (PROFESSION_LABELS[row[0]] if by == "profession" else row[0], *_counts(row[1:]))
        for row in session.execute(query)
    )
    how = SESSIONS_HOW + (
        " Regroupées par programme de séances." if by == "program" else " Regroupées par profession de l'effecteur."
    )
    return Indicator(f"seances_par_{by}", title, how, (header, *SESSION_COLUMNS), _with_total(rows), summary_rows=1)


def _hours(seconds) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 1)


def _rate(part, whole) -> float | None:
    return round(100 * int(part or 0) / int(whole), 1) if whole else None


def delays(session: Session, scope: Scope) -> Indicator:
    confirmation = session.execute(
        select(func.count(A.id), func.avg(seconds_between(A.created_at, A.confirmed_at))).where(
            *scope.sessions(), A.accompanying_id.is_not(None), A.confirmed_at.is_not(None)
        )
    ).one()
    referral = session.execute(
        select(func.count(Referral.id), func.avg(seconds_between(Referral.submitted_at, A.starts_at)))
        .join(A, A.id == Referral.appointment_id)
        .where(*scope.sessions(), Referral.submitted_at.is_not(None))
    ).one()
    on_time = and_(Delivery.sent_at.is_not(None), Delivery.sent_at <= Delivery.due_at)
    deliveries = session.execute(
        select(func.count(Delivery.id), func.sum(case((on_time, 1), else_=0)))
        .join(Report, Report.id == Delivery.report_id)
        # A session's report carries its CPTS (workflows.reports): the plan then reads the CPTS's reports only.
        .join(A, and_(A.id == Report.appointment_id, Report.cpts_id == scope.cpts))
        .where(*scope.sessions())
    ).one()
    days = None if referral[1] is None else round(float(referral[1]) / 86400, 1)
    return Indicator(
        "delais",
        "Délais",
        "Délai de confirmation : du moment où la visite est proposée à l'IDEL ou au pharmacien accompagnant à sa "
        "confirmation, en heures, en moyenne sur les séances accompagnées confirmées. Délai adressage → rendez-vous : "
        "de l'envoi de l'adressage par le médecin au début de la séance programmée, en jours, en moyenne. Comptes "
        "rendus dans leur délai : part des envois de comptes rendus des séances de la période partis avant leur "
        "échéance (fin de la séance plus le délai du programme), sur tous les envois dus. Séances comptées par leur "
        "début dans la période.",
        ("Indicateur", "Nombre", "Valeur"),
        (
            ("Délai de confirmation des visites (heures)", int(confirmation[0]), _hours(confirmation[1])),
            ("Délai adressage → rendez-vous (jours)", int(referral[0]), days),
            ("Comptes rendus envoyés dans leur délai (%)", int(deliveries[0]), _rate(deliveries[1], deliveries[0])),
        ),
        chart=False,
    )


def teleexpertise(session: Session, scope: Scope) -> Indicator:
    answered = T.answered_at.is_not(None)
    row = session.execute(
        select(
            func.count(T.id),
            func.sum(case((answered, 1), else_=0)),
            func.avg(case((answered, seconds_between(T.submitted_at, T.answered_at)))),
            func.sum(case((T.state == TeleexpertiseState.EXPIRED, 1), else_=0)),
        ).where(T.cpts_id == scope.cpts, *scope.within(T.submitted_at))
    ).one()
    return Indicator(
        "teleexpertise",
        "Téléexpertise",
        "Demandes de téléexpertise envoyées dans la période (heure de Paris), celles qui ont reçu une réponse, le "
        "délai moyen de réponse en heures (de l'envoi à la réponse) et celles qui ont expiré sans réponse. "
        "Indépendant du programme choisi : une téléexpertise n'appartient à aucun programme de séances.",
        ("Indicateur", "Valeur"),
        (
            ("Demandes", int(row[0])),
            ("Répondues", int(row[1] or 0)),
            ("Délai moyen de réponse (heures)", _hours(row[2])),
            ("Expirées", int(row[3] or 0)),
        ),
        chart=False,
    )


def telesoin_share(session: Session, scope: Scope) -> Indicator:
    """The distribution of the télésoin share of the IDEL and kinés who do télésoin, in bands."""
    period = scope.period
    remote = (
        select(FeeEntry.professional_id, func.sum(FeeEntry.amount).label("amount"))
        .where(
            FeeEntry.cpts_id == scope.cpts,
            FeeEntry.is_remote_care.is_(True),
            FeeEntry.status.in_(LIVE_FEES),
            FeeEntry.act_on >= scope.day(period.first_day),
            FeeEntry.act_on <= scope.day(period.last_day),
        )
        .group_by(FeeEntry.professional_id)
        .subquery()
    )
    declared = (
        select(
            DeclaredActivity.professional_id,
            func.sum(DeclaredActivity.amount).label("amount"),
            func.count(DeclaredActivity.id).label("months"),
        )
        .where(
            DeclaredActivity.professional_id.in_(select(Professional.id).where(Professional.cpts_id == scope.cpts)),
            DeclaredActivity.year == period.year,
            DeclaredActivity.month.in_(period.months),
        )
        .group_by(DeclaredActivity.professional_id)
        .subquery()
    )
    rows = session.execute(
        select(Professional.profession, remote.c.amount, declared.c.amount, declared.c.months)
        .outerjoin(remote, remote.c.professional_id == Professional.id)
        .outerjoin(declared, declared.c.professional_id == Professional.id)
        .where(
            Professional.cpts_id == scope.cpts,
            Professional.profession.in_(SHARE_PROFESSIONS),
            or_(Professional.does_telesoin.is_(True), remote.c.amount.is_not(None)),
        )
    ).all()
    undeclared = len(SHARE_BANDS)
    bands = {profession: [0] * (undeclared + 1) for profession in SHARE_PROFESSIONS}
    above = dict.fromkeys(SHARE_PROFESSIONS, 0)
    for profession, remote_amount, declared_amount, months in rows:  # one row per professional, already summed
        share = _share(remote_amount, declared_amount, months, len(period.months))
        if share is None:
            bands[profession][undeclared] += 1
            continue
        bands[profession][next(i for i, (top, _label) in enumerate(SHARE_BANDS) if top is None or share < top)] += 1
        above[profession] += share >= SHARE_WARNING
    labels = [label for _top, label in SHARE_BANDS] + ["Activité non déclarée"]
    table = [
        (label, bands[Profession.NURSE][i], bands[Profession.PHYSIOTHERAPIST][i]) for i, label in enumerate(labels)
    ]
    return Indicator(
        "part_telesoin",
        "Part du télésoin dans l'activité des IDEL et des kinés",
        "Pour chaque IDEL et masseur-kinésithérapeute de la CPTS qui fait du télésoin : ses honoraires de télésoin "
        "enregistrés par le hub sur la période (hors téléconsultations accompagnées) divisés par son activité "
        "conventionnelle déclarée sur la période (les mois non déclarés estimés par la moyenne des mois déclarés), "
        "puis le nombre de professionnels par tranche ; la dernière ligne compte ceux qui dépassent 15 %, seuil "
        "d'alerte avant la limite de 20 %. Indépendant du programme choisi.",
        ("Part du télésoin", "IDEL", "Kinés"),
        (*table, ("À 15 % ou plus", above[Profession.NURSE], above[Profession.PHYSIOTHERAPIST])),
        summary_rows=1,
    )


def _share(remote_amount, declared_amount, declared_months, period_months: int) -> Decimal | None:
    """One professional's share, as workflows.fees.remote_share estimates it; None without declared activity."""
    if not declared_amount or not declared_months:
        return None
    return Decimal(remote_amount or 0) / (Decimal(declared_amount) / declared_months * period_months)


def fees_by_code(session: Session, scope: Scope) -> Indicator:
    query = (
        select(FeeEntry.code, func.count(FeeEntry.id), func.sum(FeeEntry.amount))
        .where(
            FeeEntry.cpts_id == scope.cpts,
            FeeEntry.status.in_(LIVE_FEES),
            FeeEntry.act_on >= scope.day(scope.period.first_day),
            FeeEntry.act_on <= scope.day(scope.period.last_day),
        )
        .group_by(FeeEntry.code)
        .order_by(FeeEntry.code)
    )
    if scope.program_id is not None:
        query = query.join(A, A.id == FeeEntry.appointment_id).where(A.program_id == scope.program_id)
    rows = [(code, int(count), Decimal(amount or 0)) for code, count, amount in session.execute(query)]
    total = (ALL_CPTS, sum(r[1] for r in rows), sum((r[2] for r in rows), Decimal(0)))
    return Indicator(
        "honoraires_par_code",
        "Rémunérations par code",
        "Actes enregistrés par le hub (acquis, déclarés ou payés ; les annulés exclus) dont la date locale tombe dans "
        "la période, comptés et sommés par code (TLS, TLL, TLD, TLM, RQD, TE2, TMI, TMK…), au tarif en vigueur à la "
        "date de l'acte. Avec un programme choisi, seuls les actes de ses séances.",
        ("Code", "Actes", "Montant (€)"),
        (*rows, total),
        summary_rows=1,
        chart_columns=("Montant (€)",),
    )


def satisfaction(session: Session, scope: Scope) -> Indicator:
    answered = Survey.answered_at.is_not(None)
    scores = Survey.ease + Survey.av_quality + Survey.listened
    row = session.execute(
        select(
            func.count(Survey.id),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((and_(answered, scores >= SATISFIED_TOTAL), 1), else_=0)),
            func.sum(case((and_(answered, Survey.would_again.is_(True)), 1), else_=0)),
            func.avg(Survey.ease),
            func.avg(Survey.av_quality),
            func.avg(Survey.listened),
        )
        # The survey carries its session's CPTS (workflows.surveys): restricting the join to it lets PostgreSQL
        # hash the CPTS's surveys rather than every CPTS's (bench/README.md, P6 indicators).
        .join(A, and_(A.id == Survey.appointment_id, Survey.cpts_id == scope.cpts))
        .where(*scope.sessions())
    ).one()
    sent, answers = int(row[0]), int(row[1] or 0)
    shown = answers >= MIN_ANSWERS_SHOWN

    def mean(value) -> float | None:
        return None if value is None or not shown else round(float(value), 2)

    def share(part) -> float | None:
        return _rate(part, answers) if shown else None

    return Indicator(
        "satisfaction",
        "Satisfaction des patients",
        "Enquêtes envoyées aux patients après une séance à distance réalisée qui commence dans la période ; taux de "
        "réponse ; part des patients satisfaits (moyenne d'au moins 3 sur 4 aux trois questions : facilité, image et "
        "son, écoute) et de ceux qui referaient une séance à distance, parmi les réponses ; note moyenne sur 4 de "
        f"chaque question. Avec moins de {MIN_ANSWERS_SHOWN} réponses, ni parts ni moyennes : elles se liraient comme "
        "les réponses de patients identifiables.",
        ("Indicateur", "Valeur"),
        (
            ("Enquêtes envoyées", sent),
            ("Réponses", answers),
            ("Taux de réponse (%)", _rate(answers, sent)),
            ("Patients satisfaits (%)", share(row[2])),
            ("Referaient une séance à distance (%)", share(row[3])),
            ("Facilité (sur 4)", mean(row[4])),
            ("Image et son (sur 4)", mean(row[5])),
            ("Sentiment d'être écouté (sur 4)", mean(row[6])),
        ),
        chart=False,
    )


def incidents(session: Session, scope: Scope) -> Indicator:
    """Remote sessions held, those with a technical incident or an adverse event, and the incidents by kind."""
    held_remote = and_(A.state.in_(HELD), A.kind.in_(REMOTE_KINDS))
    technical = Incident.kind.in_(
        (IncidentKind.CONNECTION_LOST, IncidentKind.PHONE_FALLBACK, IncidentKind.EQUIPMENT_FAILURE)
    )
    adverse = Incident.kind.in_((IncidentKind.ADVERSE_EVENT, IncidentKind.SERIOUS_ADVERSE_EVENT))
    row = session.execute(
        select(
            func.count(func.distinct(A.id)),
            func.count(func.distinct(case((technical, A.id)))),
            func.count(func.distinct(case((adverse, A.id)))),
            *(func.sum(case((Incident.kind == kind, 1), else_=0)) for kind in IncidentKind),
        )
        .outerjoin(Incident, Incident.appointment_id == A.id)
        .where(*scope.sessions(), held_remote)
    ).one()
    held, with_technical, with_adverse = int(row[0]), int(row[1]), int(row[2])
    kinds = dict(zip(IncidentKind, (int(value or 0) for value in row[3:]), strict=True))
    return Indicator(
        "incidents",
        "Incidents des séances à distance",
        "Séances à distance tenues (réalisées ou passées au téléphone) qui commencent dans la période ; part de "
        "celles qui ont eu au moins un incident technique (connexion perdue, bascule au téléphone, panne de "
        "matériel), puis au moins un événement indésirable (EI ou EIG) ; nombre d'incidents déclarés par nature.",
        ("Indicateur", "Valeur"),
        (
            ("Séances à distance tenues", held),
            ("Avec incident technique", with_technical),
            ("Taux d'incident technique (%)", _rate(with_technical, held)),
            ("Avec événement indésirable", with_adverse),
            ("Taux d'événement indésirable (%)", _rate(with_adverse, held)),
            ("Connexions perdues", kinds[IncidentKind.CONNECTION_LOST]),
            ("Bascules au téléphone", kinds[IncidentKind.PHONE_FALLBACK]),
            ("Pannes de matériel", kinds[IncidentKind.EQUIPMENT_FAILURE]),
            ("EI", kinds[IncidentKind.ADVERSE_EVENT]),
            ("EIG", kinds[IncidentKind.SERIOUS_ADVERSE_EVENT]),
        ),
        chart=False,
    )


def patients_without_gp(session: Session, scope: Scope) -> Indicator:
    seen_ids = select(A.patient_id).where(*scope.sessions(), A.state.in_(HELD)).distinct().subquery()
    row = session.execute(
        select(func.count(), func.sum(case((Patient.attending_gp_id.is_(None), 1), else_=0)))
        .select_from(seen_ids)
        .join(Patient, Patient.id == seen_ids.c.patient_id)
    ).one()
    seen, orphans = int(row[0]), int(row[1] or 0)
    return Indicator(
        "patients_sans_medecin_traitant",
        "Patients sans médecin traitant vus",
        "Patients différents vus en séance (réalisée ou passée au téléphone) dans la période, et parmi eux ceux "
        "qui n'ont pas de médecin traitant renseigné dans le hub.",
        ("Indicateur", "Valeur"),
        (
            ("Patients vus", seen),
            ("Sans médecin traitant", orphans),
            ("Part sans médecin traitant (%)", _rate(orphans, seen)),
        ),
        chart=False,
    )


def waiting_time(session: Session, scope: Scope) -> Indicator:
    entries = [WaitingEntry.cpts_id == scope.cpts]
    if scope.program_id is not None:
        entries.append(WaitingEntry.program_id == scope.program_id)
    waiting_now = session.scalar(
        select(func.count(WaitingEntry.id)).where(*entries, WaitingEntry.state == WaitingState.WAITING)
    )
    # One row per booking of the period: the median needs them all (a list of numbers, never of patients).
    waits = session.scalars(
        select(seconds_between(WaitingEntry.created_at, WaitingEntry.resolved_at)).where(
            *entries, WaitingEntry.state == WaitingState.BOOKED, *scope.within(WaitingEntry.resolved_at)
        )
    ).all()
    days = [float(seconds) / 86400 for seconds in waits]
    return Indicator(
        "liste_attente",
        "Liste d'attente",
        "Patients en liste d'attente aujourd'hui (quelle que soit la période), et parmi les inscriptions dont le "
        "rendez-vous a été pris dans la période : leur nombre, puis le délai de l'inscription à la prise du "
        "rendez-vous, en jours, en moyenne et en médiane.",
        ("Indicateur", "Valeur"),
        (
            ("En attente aujourd'hui", int(waiting_now or 0)),
            ("Rendez-vous pris depuis la liste dans la période", len(days)),
            ("Délai moyen d'attente (jours)", round(statistics.fmean(days), 1) if days else None),
            ("Délai médian d'attente (jours)", round(statistics.median(days), 1) if days else None),
        ),
        chart=False,
    )


def gp_search_list(session: Session, scope: Scope) -> Indicator:
    """The list of patients without a médecin traitant (workflows.gp_matching): its size now, the entries of the
    period, and the delay from entry to a médecin traitant found through the hub."""
    entered = and_(*scope.within(GpSearch.entered_at))
    sizes = session.execute(
        select(
            func.sum(case((GpSearch.state == GpSearchState.WAITING, 1), else_=0)),
            func.sum(case((entered, 1), else_=0)),
        ).where(GpSearch.cpts_id == scope.cpts)
    ).one()
    waited = session.scalars(
        select(seconds_between(GpSearch.entered_at, GpSearch.closed_at)).where(
            GpSearch.cpts_id == scope.cpts, GpSearch.state == GpSearchState.MATCHED, *scope.within(GpSearch.closed_at)
        )
    ).all()
    days = [float(seconds) / 86400 for seconds in waited if seconds is not None]
    return Indicator(
        "liste_sans_medecin_traitant",
        "Liste des patients sans médecin traitant",
        "Patients en attente d'un médecin traitant sur la liste de la coordination aujourd'hui (quelle que soit la "
        "période) ; inscriptions sur la liste dans la période ; pour les patients dont un médecin de la CPTS a "
        "accepté d'être le médecin traitant dans la période, délai de l'inscription à l'acceptation, en jours "
        "(moyenne et médiane). Un médecin trouvé par ailleurs ou un retrait n'entre pas dans le délai.",
        ("Indicateur", "Valeur"),
        (
            ("En attente aujourd'hui", int(sizes[0] or 0)),
            ("Inscriptions dans la période", int(sizes[1] or 0)),
            ("Médecins traitants trouvés dans la période", len(days)),
            ("Délai moyen jusqu'au médecin traitant (jours)", round(statistics.fmean(days), 1) if days else None),
            ("Délai médian jusqu'au médecin traitant (jours)", round(statistics.median(days), 1) if days else None),
        ),
        chart=False,
    )


@dataclass(frozen=True)
class Review:
    """The indicators of one scope, as the page, the API and the exports show them."""

    scope: Scope
    program_name: str | None
    indicators: list[Indicator]

    @property
    def audit_details(self) -> dict:
        """What the audit line of a read or an export says: the filters, no figure."""
        period = self.scope.period
        return {"year": period.year, "month": period.month, "program_id": self.scope.program_id}

    @property
    def title(self) -> str:
        program = f", programme « {self.program_name} »" if self.program_name else ""
        return f"Indicateurs de la CPTS — {self.scope.period.label}{program}"


def current_year(zone: str) -> int:
    """The year it is now in the territory (on 31 December at 23:30 in Paris, that year still)."""
    return dt.datetime.now(ZoneInfo(zone)).year


def review(
    session: Session, *, cpts_id: int, year: int | None, month: int | None, program_id: int | None, zone: str
) -> Review:
    """The indicators of the CPTS for a Paris year (this one by default) or month, of one of its programs if asked
    (another CPTS's program, or none, is not found)."""
    names = dict(programs(session, cpts_id))
    if program_id is not None and program_id not in names:
        raise NotFound(UNKNOWN_PROGRAM)
    scope = Scope(cpts_id, Period(year or current_year(zone), month, zone), program_id)
    return Review(scope, names.get(program_id) if program_id else None, compute(session, scope))


def to_csv(review: Review) -> bytes:
    """Every table of the review, one after the other, each under its title and its computation; counts, rates
    and amounts only, nothing that names a patient or a professional. UTF-8 with a BOM and semicolons, as a French
    spreadsheet opens them."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([review.title])
    for indicator in review.indicators:
        writer.writerow([])
        writer.writerow([indicator.title])
        writer.writerow([indicator.how])
        writer.writerow(indicator.columns)
        for row in indicator.rows:
            writer.writerow([figure(value) for value in row])
    return ("\ufeff" + out.getvalue()).encode()


def attendance_outcomes(session: Session, scope: Scope) -> Indicator:
    """The absences as separate outcomes (workflows.attendance): the patient's (no-show), the accompanying
    professional's, the performer's (session postponed), and the late cancellations, which are none of them."""
    state = A.state
    expected = state.in_((AppointmentState.DONE, AppointmentState.DEGRADED, AppointmentState.NO_SHOW))
    row = session.execute(
        select(
            func.sum(case((expected, 1), else_=0)),
            func.sum(case((state == AppointmentState.NO_SHOW, 1), else_=0)),
            func.sum(case((Attendance.is_accompanying_present.is_(False), 1), else_=0)),
            func.sum(case((Attendance.is_performer_present.is_(False), 1), else_=0)),
            func.sum(case((and_(state == AppointmentState.CANCELLED, A.is_late_cancellation.is_(True)), 1), else_=0)),
        )
        # An attendance carries its session's CPTS (workflows.attendance): joining on it too keeps the hash join to
        # the CPTS's attendances instead of every CPTS's (bench/README.md, P6 indicators).
        .outerjoin(Attendance, and_(Attendance.appointment_id == A.id, Attendance.cpts_id == scope.cpts))
        .where(*scope.sessions())
    ).one()
    due, no_show, accompanying_absent, performer_absent, late = _counts(row)
    return Indicator(
        "presences",
        "Absences et annulations tardives",
        "Rendez-vous dont le début tombe dans la période. Patient absent : noté par un professionnel ou la "
        "coordination, rapporté aux séances où le patient était attendu (réalisées, passées au téléphone ou patient "
        "absent). Accompagnant·e absent·e et professionnel absent (séance reportée) : selon les présences notées. "
        "Les annulations tardives (moins de 24 h avant) sont comptées à part : ce ne sont pas des absences.",
        ("Indicateur", "Valeur"),
        (
            ("Séances où le patient était attendu", due),
            ("Patient absent", no_show),
            ("Taux d'absence du patient (%)", _rate(no_show, due)),
            ("Accompagnant·e absent·e", accompanying_absent),
            ("Professionnel absent (séance reportée)", performer_absent),
            ("Annulations tardives", late),
        ),
        chart=False,
    )


def programs(session: Session, cpts_id: int) -> list[tuple[int, str]]:
    """The CPTS's programs for the filter: id and name."""
    rows = session.execute(
        select(SessionProgram.id, SessionProgram.name)
        .where(SessionProgram.cpts_id == cpts_id)
        .order_by(SessionProgram.name, SessionProgram.id)
    )
    return [(row.id, row.name) for row in rows]
