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
The counts come from two grouped queries, whatever the number of candidates."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.formatting import DAYS
from hub.models import (
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentState,
    Patient,
    Professional,
    VisitOffer,
    VisitOfferState,
)
from hub.services.communes import commune_name, distance_km

# An accompaniment "given": the IDEL was with the patient, whether the session ran on video or fell back to phone.
HELD = (AppointmentState.DONE, AppointmentState.DEGRADED)


@dataclass(frozen=True)
class RankedProfessional:
    professional: Professional
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


@dataclass(frozen=True)
class Ranking:
    candidates: list[RankedProfessional]
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
) -> Ranking:
    """The professionals of `pool` free over `window`, working that weekday and, `at_home`, serving the patient's
    commune, best first (see the module); the others with the reason they are left out."""
    weekday = window[0].astimezone(ZoneInfo(zone)).isoweekday()
    busy = busy_professionals(session, [p.id for p in pool], *window)
    left_out: dict[int, str] = {}
    kept: list[Professional] = []
    for professional in pool:
        if professional.id in busy:
            left_out[professional.id] = "n'est pas libre à ce créneau"
        elif not professional.works_on(weekday):
            left_out[professional.id] = f"ne travaille pas le {DAYS[weekday - 1]}"
        elif at_home and not professional.serves(patient.commune_insee):
            left_out[professional.id] = "n'intervient pas à domicile dans la commune du patient"
        else:
            kept.append(professional)
    ids = [p.id for p in kept]
    visits = _visits_this_month(session, ids, zone=zone, now=now)
    pending = _pending_offers(session, ids)
    ranked = [
        RankedProfessional(
            professional=p,
            commune=commune_name(p.commune_insee),
            distance_km=distance_km(patient.commune_insee, p.commune_insee),
            visits_this_month=visits.get(p.id, 0),
            pending_offers=pending.get(p.id, 0),
            is_own=p.id == own_id,
            at_home=at_home,
        )
        for p in kept
    ]
    ranked.sort(key=RankedProfessional.sort_key)
    return Ranking(ranked, left_out)


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
