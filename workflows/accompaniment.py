"""Who should be with the patient at an assisted teleconsultation, as the coordinator schedules a referral: the
place the patient's needs call for, and the accompanying professionals free at the slot, ranked — the patient's
own IDEL first, then the other IDELs by distance from the patient's commune; in an officine's program, the
officine's pharmacists only. Each suggestion says why it is ranked there, in words the coordinator reads."""

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import (
    Allocation,
    AllocationResource,
    AppointmentKind,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    SessionProgram,
    Slot,
)
from hub.services import directory
from hub.services.communes import commune_name, distance_km
from workflows import appointments

REDUCED_MOBILITY = "mobilite_reduite"


@dataclass(frozen=True)
class Candidate:
    professional: Professional
    commune: str
    distance_km: float | None
    reason: str
    is_own: bool

    @property
    def distance_label(self) -> str:
        """`4,2 km`, or « distance inconnue » when a commune is not listed."""
        if self.distance_km is None:
            return "distance inconnue"
        return f"{self.distance_km:.1f}".replace(".", ",") + "\u00a0km"


@dataclass(frozen=True)
class Suggestions:
    candidates: list[Candidate]
    # Why the patient's own IDEL is not first (busy, or not serving the commune at home), when they have one.
    own_note: str | None


def suggested_place(program: SessionProgram, needs: list[str]) -> PlaceKind:
    """A patient with reduced mobility is seen at home (an officine's session stays at the officine); anyone
    else where the program's sessions take place."""
    place = appointments.default_place(program)
    if REDUCED_MOBILITY in needs and place is not PlaceKind.PHARMACY:
        return PlaceKind.HOME
    return place


def place_choices(program: SessionProgram) -> list[PlaceKind]:
    """The places a session of the program may be held at: the officine for an officine's program, else any
    place but an officine."""
    if program.is_at_pharmacy:
        return [PlaceKind.PHARMACY]
    return [p for p in PlaceKind if p is not PlaceKind.PHARMACY]


def window(slot: Slot) -> tuple[dt.datetime, dt.datetime]:
    """The accompaniment window of an assisted teleconsultation booked into the slot (as workflows.appointments
    books it)."""
    program = slot.program
    return (
        slot.starts_at - dt.timedelta(minutes=program.accompaniment_before_minutes),
        slot.ends_at + dt.timedelta(minutes=program.accompaniment_after_minutes),
    )


def suggest(session: Session, *, slot: Slot, patient: Patient, place_kind: PlaceKind) -> Suggestions:
    """The professionals who may accompany the patient at this slot and place and are free over its whole
    accompaniment window, best first. No one for a télésoin program (its performer is with the patient)."""
    program = slot.program
    if program.appointment_kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return Suggestions([], None)
    if program.is_at_pharmacy:
        assert program.organisation_id is not None  # an officine's program names its officine
        pool = directory.officine_pharmacists(session, program.organisation_id)
        own = None
    else:
        pool = _idels(session, patient.cpts_id)
        own = appointments.own_idel(session, patient)
    busy = _busy(session, [p.id for p in pool], *window(slot))
    at_home = place_kind in appointments.HOME_PLACES
    ranked = [
        _candidate(professional, patient, is_own=own is not None and professional.id == own.id, at_home=at_home)
        for professional in pool
        if professional.id not in busy and (not at_home or professional.serves(patient.commune_insee))
    ]
    ranked.sort(key=_rank)
    return Suggestions(ranked, _own_note(own, busy, patient, at_home=at_home))


def _idels(session: Session, cpts_id: int) -> list[Professional]:
    return list(
        session.scalars(
            select(Professional).where(
                Professional.cpts_id == cpts_id,
                Professional.profession == Profession.NURSE,
                Professional.is_active.is_(True),
                Professional.accompanies_teleconsultation.is_(True),
            )
        )
    )


def _busy(session: Session, ids: list[int], start: dt.datetime, end: dt.datetime) -> set[int]:
    if not ids:
        return set()
    overlapping = select(Allocation.resource_id).where(
        Allocation.resource_kind == AllocationResource.PROFESSIONAL,
        Allocation.resource_id.in_(ids),
        Allocation.starts_at < end,
        Allocation.ends_at > start,
    )
    return set(session.scalars(overlapping))


def _candidate(professional: Professional, patient: Patient, *, is_own: bool, at_home: bool) -> Candidate:
    distance = distance_km(patient.commune_insee, professional.commune_insee)
    commune = commune_name(professional.commune_insee)
    if is_own:
        reason = "IDEL du patient (équipe de soins), libre à ce créneau"
    elif professional.profession is Profession.PHARMACIST:
        reason = "Pharmacien·ne de l'officine de la séance, libre à ce créneau"
    elif professional.commune_insee and professional.commune_insee == patient.commune_insee:
        reason = f"Libre à ce créneau, exerce dans la commune du patient ({commune})"
    else:
        reason = f"Libre à ce créneau, exerce à {commune}"
    if at_home and not is_own:
        reason += ", intervient à domicile dans la commune du patient"
    return Candidate(professional, commune, distance, reason, is_own)


def _rank(candidate: Candidate) -> tuple:
    unknown = candidate.distance_km is None
    return (
        not candidate.is_own,
        unknown,
        candidate.distance_km or 0.0,
        candidate.professional.last_name,
        candidate.professional.id,
    )


def _own_note(own: Professional | None, busy: set[int], patient: Patient, *, at_home: bool) -> str | None:
    if own is None:
        return None
    if own.id in busy:
        return f"{own.full_name}, IDEL du patient, n'est pas libre à ce créneau."
    if at_home and not own.serves(patient.commune_insee):
        return f"{own.full_name}, IDEL du patient, n'intervient pas à domicile dans sa commune."
    if not own.accompanies_teleconsultation or not own.is_active:
        return f"{own.full_name}, IDEL du patient, n'accompagne pas de téléconsultation."
    return None
