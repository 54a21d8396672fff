"""The one ranking of the professionals who may accompany a patient, used wherever one is chosen: the
coordinator's suggestions as a referral is scheduled (workflows.accompaniment) and the second round of offers
when the patient's own IDEL declines or does not answer (workflows.appointments.offer_to_other_idels).

Who is left out: anyone busy over the accompaniment window, anyone who does not work that weekday (local time),
and, for a visit at the patient's home, anyone who does not serve the patient's commune. The others, best first:
1. the patient's own IDEL;
2. the travel distance from the professional's practice to the patient — great-circle between the communes'
   centres (hub.services.communes), no road factor: a commune not listed comes after every known distance;
3. the accompaniment visits already given this calendar month (local), so that the same nurse is not always asked;
4. the proposals waiting for an answer (pending visit offers);
5. the name.
The counts come from two grouped queries, whatever the number of candidates; for a booked visit
(the candidates to reassign it), `visit_pool` reads the pool and every fact in one statement."""

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from hub.db import UTCDateTime, driver_rows
from hub.formatting import DAYS
from hub.models import (
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentState,
    Patient,
    Profession,
    Professional,
    VisitOffer,
    VisitOfferState,
)
from hub.models.professional import professional_full_name, serves_commune, works_on_day
from hub.services.care import care_team_query
from hub.services.communes import commune_name, distance_km

# An accompaniment "given": the IDEL was with the patient, whether the session ran on video or fell back to phone.
HELD = (AppointmentState.DONE, AppointmentState.DEGRADED)


@dataclasses.dataclass(frozen=True)
class PoolProfessional:
    """A professional as `visit_pool` reads her, as plain columns: what the ranking, the candidates' answer and the
    appointment's page read of her. An ORM entity per member cost more CPU than the statement that reads them all
    (issue 17, P7: GET candidates)."""

    id: int
    first_name: str
    last_name: str
    profession: Profession
    commune_insee: str | None
    served_communes: str
    working_days: str
    is_active: bool
    accompanies_teleconsultation: bool

    def serves(self, commune_insee: str | None) -> bool:
        return serves_commune(self.commune_insee, self.served_communes, commune_insee)

    def works_on(self, isoweekday: int) -> bool:
        return works_on_day(self.working_days, isoweekday)

    @property
    def full_name(self) -> str:
        return professional_full_name(self.first_name, self.last_name)


# A professional the ranking ranks: an entity (`rank`'s pool) or a plain row of a booked visit's pool (`visit_pool`).
Ranked = Professional | PoolProfessional
R = TypeVar("R", Professional, PoolProfessional)


@dataclasses.dataclass(frozen=True)
class RankedProfessional(Generic[R]):
    professional: R
    commune: str
    distance_km: float | None
    visits_this_month: int
    pending_offers: int
    is_own: bool
    at_home: bool = False

    @property
    def distance_label(self) -> str:
        """`4,2 km`, or « distance inconnue » when a commune is not listed."""
        if self.distance_km is None:
            return "distance inconnue"
        return f"{self.distance_km:.1f}".replace(".", ",") + "\u00a0km"

    @property
    def reason(self) -> str:
        """Why the candidate ranks there, in the order the ranking reads: « 4,2 km · 3 visites ce mois · 1
        proposition en attente »."""
        parts = ["IDEL du patient"] if self.is_own else []
        parts += [
            self.distance_label,
            _count(self.visits_this_month, "visite", "visites") + " ce mois",
            _count(self.pending_offers, "proposition", "propositions") + " en attente",
        ]
        if self.at_home:
            parts.append("intervient à domicile dans la commune du patient")
        return " · ".join(parts)

    def sort_key(self) -> tuple:
        return (
            not self.is_own,
            self.distance_km is None,
            self.distance_km or 0.0,
            self.visits_this_month,
            self.pending_offers,
            self.professional.last_name,
            self.professional.first_name,
            self.professional.id,
        )


@dataclasses.dataclass(frozen=True)
class Ranking(Generic[R]):
    candidates: list[RankedProfessional[R]]
    # Why each professional of the pool was left out, by id: busy, not working that day, not serving the commune.
    left_out: dict[int, str]


def rank(
    session: Session,
    *,
    pool: Sequence[Professional],
    patient: Patient,
    window: tuple[dt.datetime, dt.datetime],
    at_home: bool,
    own_id: int | None,
    zone: str,
    now: dt.datetime,
) -> Ranking[Professional]:
    """The professionals of `pool` free over `window`, working that weekday and, `at_home`, serving the patient's
    commune, best first (see the module); the others with the reason they are left out."""
    busy = busy_professionals(session, [p.id for p in pool], *window)
    commune = patient.commune_insee
    kept, left_out = _kept(pool, busy, patient_commune=commune, window=window, at_home=at_home, zone=zone)
    ids = [p.id for p in kept]
    visits = _visits_this_month(session, ids, zone=zone, now=now)
    pending = _pending_offers(session, ids)
    return _ranked(kept, left_out, visits, pending, patient_commune=commune, at_home=at_home, own_id=own_id)


def rank_members(
    members: Sequence["PoolMember"],
    *,
    patient_commune: str | None,
    window: tuple[dt.datetime, dt.datetime],
    at_home: bool,
    own_id: int | None,
    zone: str,
) -> Ranking[PoolProfessional]:
    """`rank` over members whose facts were read with them (`visit_pool`): no statement."""
    busy = {m.professional.id for m in members if m.busy}
    pool = [m.professional for m in members]
    kept, left_out = _kept(pool, busy, patient_commune=patient_commune, window=window, at_home=at_home, zone=zone)
    visits = {m.professional.id: m.visits_this_month for m in members}
    pending = {m.professional.id: m.pending_offers for m in members}
    return _ranked(kept, left_out, visits, pending, patient_commune=patient_commune, at_home=at_home, own_id=own_id)


def _kept(
    pool: Sequence[R],
    busy: set[int],
    *,
    patient_commune: str | None,
    window: tuple[dt.datetime, dt.datetime],
    at_home: bool,
    zone: str,
) -> tuple[list[R], dict[int, str]]:
    weekday = window[0].astimezone(ZoneInfo(zone)).isoweekday()
    left_out: dict[int, str] = {}
    kept: list[R] = []
    for professional in pool:
        if professional.id in busy:
            left_out[professional.id] = "n'est pas libre à ce créneau"
        elif not professional.works_on(weekday):
            left_out[professional.id] = f"ne travaille pas le {DAYS[weekday - 1]}"
        elif at_home and not professional.serves(patient_commune):
            left_out[professional.id] = "n'intervient pas à domicile dans la commune du patient"
        else:
            kept.append(professional)
    return kept, left_out


def _ranked(
    kept: list[R],
    left_out: dict[int, str],
    visits: Mapping[int | None, int] | Mapping[int, int],
    pending: Mapping[int, int],
    *,
    patient_commune: str | None,
    at_home: bool,
    own_id: int | None,
) -> Ranking[R]:
    ranked = [
        RankedProfessional(
            professional=p,
            commune=commune_name(p.commune_insee),
            distance_km=distance_km(patient_commune, p.commune_insee),
            visits_this_month=visits.get(p.id, 0),
            pending_offers=pending.get(p.id, 0),
            is_own=p.id == own_id,
            at_home=at_home,
        )
        for p in kept
    ]
    ranked.sort(key=RankedProfessional.sort_key)
    return Ranking(ranked, left_out)


@dataclasses.dataclass(frozen=True)
class PoolMember:
    """A professional `visit_pool` read, with what the ranking and the appointment's candidates need of her."""

    professional: PoolProfessional
    in_pool: bool  # an active IDEL of the CPTS who accompanies teleconsultations
    is_own: bool  # the patient's own IDEL (workflows.appointments.own_idel), in the pool or not
    declined: bool  # declined this visit
    busy: bool  # holds a booking overlapping the visit's accompaniment window
    visits_this_month: int
    pending_offers: int


def visit_pool(
    session: Session,
    *,
    cpts_id: int,
    patient_id: int,
    appointment_id: int,
    window: tuple[dt.datetime, dt.datetime],
    zone: str,
    now: dt.datetime,
) -> list[PoolMember]:
    """The CPTS's IDEL pool and the patient's own IDEL for a booked visit (its accompaniment `window`), each with
    every fact `rank` reads and whether she declined it, in one statement (the candidates read them in six), run by
    the driver (hub.db.driver_rows: no autoflush; the visit's readers only read)."""
    month_start, month_end = month_bounds(now, zone)
    parameters = {
        "cpts_id": cpts_id,
        "patient_id": patient_id,
        "appointment_id": appointment_id,
        "window_start": window[0],
        "window_end": window[1],
        "month_start": month_start,
        "month_end": month_end,
    }
    return [
        PoolMember(PoolProfessional(*row[:_FACTS_AT]), *row[_FACTS_AT:])
        for row in driver_rows(session, _visit_pool_statement(), parameters)
    ]


# The columns of a PoolProfessional, in its fields' order; the member's facts follow them in visit_pool's rows.
_POOL_COLUMNS = tuple(getattr(Professional, field.name) for field in dataclasses.fields(PoolProfessional))
_FACTS_AT = len(_POOL_COLUMNS)


@functools.cache
def _visit_pool_statement() -> Select:
    """visit_pool's statement, built once with its values as parameters: building its subqueries per request cost
    more CPU than running them."""
    professional_id = Professional.id
    own = care_team_query(bindparam("patient_id", type_=Integer), Profession.NURSE, Professional.id).scalar_subquery()
    in_pool = and_(
        Professional.cpts_id == bindparam("cpts_id", type_=Integer),
        Professional.profession == Profession.NURSE,
        Professional.is_active.is_(True),
        Professional.accompanies_teleconsultation.is_(True),
    )
    declined = exists().where(
        VisitOffer.appointment_id == bindparam("appointment_id", type_=Integer),
        VisitOffer.professional_id == professional_id,
        VisitOffer.state == VisitOfferState.DECLINED,
    )
    busy = exists().where(
        Allocation.resource_kind == AllocationResource.PROFESSIONAL,
        Allocation.resource_id == professional_id,
        Allocation.starts_at < bindparam("window_end", type_=UTCDateTime),
        Allocation.ends_at > bindparam("window_start", type_=UTCDateTime),
    )
    visits = (
        select(func.count(func.distinct(func.coalesce(Appointment.slot_id, -Appointment.id))))
        .where(
            Appointment.accompanying_id == professional_id,
            Appointment.state.in_(HELD),
            Appointment.starts_at >= bindparam("month_start", type_=UTCDateTime),
            Appointment.starts_at < bindparam("month_end", type_=UTCDateTime),
        )
        .scalar_subquery()
    )
    pending = (
        select(func.count())
        .where(VisitOffer.professional_id == professional_id, VisitOffer.state == VisitOfferState.PENDING)
        .scalar_subquery()
    )
    # The own IDEL's subquery is about the patient's care team, not the outer row: never correlated to it.
    is_own = professional_id == own.correlate(None)
    facts = (
        in_pool.label("in_pool"),
        is_own.label("is_own"),
        declined.label("declined"),
        busy.label("busy"),
        visits.label("visits_this_month"),
        pending.label("pending_offers"),
    )
    return select(*_POOL_COLUMNS, *facts).where(or_(in_pool, is_own))


def busy_professionals(session: Session, ids: list[int], start: dt.datetime, end: dt.datetime) -> set[int]:
    """The professionals among `ids` holding any booking that overlaps [start, end)."""
    if not ids:
        return set()
    overlapping = select(Allocation.resource_id).where(
        Allocation.resource_kind == AllocationResource.PROFESSIONAL,
        Allocation.resource_id.in_(ids),
        Allocation.starts_at < end,
        Allocation.ends_at > start,
    )
    return set(session.scalars(overlapping))


def month_bounds(now: dt.datetime, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month of `now` in the territory's zone, as UTC instants [start, end)."""
    local = now.astimezone(ZoneInfo(zone))
    start = dt.datetime(local.year, local.month, 1, tzinfo=ZoneInfo(zone))
    following = dt.datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=ZoneInfo(zone))
    return start.astimezone(dt.UTC), following.astimezone(dt.UTC)


def _visits_this_month(session: Session, ids: list[int], *, zone: str, now: dt.datetime) -> dict[int | None, int]:
    if not ids:
        return {}
    start, end = month_bounds(now, zone)
    counts = (
        # One visit per session: the participants of a group session she accompanies count once.
        select(
            Appointment.accompanying_id,
            func.count(func.distinct(func.coalesce(Appointment.slot_id, -Appointment.id))),
        )
        .where(
            Appointment.accompanying_id.in_(ids),
            Appointment.state.in_(HELD),
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
        )
        .group_by(Appointment.accompanying_id)
    )
    return dict(session.execute(counts).all())


def _pending_offers(session: Session, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    counts = (
        select(VisitOffer.professional_id, func.count())
        .where(VisitOffer.professional_id.in_(ids), VisitOffer.state == VisitOfferState.PENDING)
        .group_by(VisitOffer.professional_id)
    )
    return dict(session.execute(counts).all())


def _count(n: int, singular: str, plural: str) -> str:
    # French: 0 and 1 take the singular.
    return f"{n} {singular if n <= 1 else plural}"
