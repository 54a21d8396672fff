"""Who should be with the patient at an assisted teleconsultation, as the coordinator schedules a referral: the
place the patient's needs call for, and the accompanying professionals free at the slot, ranked as
workflows.idel_ranking says (the patient's own IDEL first, then distance, visits this month, pending offers); in
an officine's program, the officine's pharmacists only. Each suggestion says why it is ranked there, in words the
coordinator reads."""

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import Appointment, AppointmentKind, Patient, PlaceKind, SessionProgram, Slot
from hub.services import directory
from workflows import appointments, idel_ranking

REDUCED_MOBILITY = "mobilite_reduite"


# A candidate is a professional ranked by workflows.idel_ranking: distance, visits this month, pending offers.
Candidate = idel_ranking.RankedProfessional


@dataclass(frozen=True)
class Suggestions:
    candidates: list[Candidate]
    # Why the patient's own IDEL is not first (busy, not working that day, not serving the commune at home).
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


def suggest(
    session: Session, *, slot: Slot, patient: Patient, place_kind: PlaceKind, now: dt.datetime | None = None
) -> Suggestions:
    """The professionals who may accompany the patient at this slot and place and are free over its whole
    accompaniment window, best first (workflows.idel_ranking). No one for a télésoin program (its performer is
    with the patient)."""
    program = slot.program
    if program.appointment_kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return Suggestions([], None)
    if program.is_at_pharmacy:
        assert program.organisation_id is not None  # an officine's program names its officine
        pool = directory.officine_pharmacists(session, program.organisation_id)
        own = None
    else:
        pool = appointments.idel_pool(session, patient.cpts_id)
        own = appointments.own_idel(session, patient)
    ranking = idel_ranking.rank(
        session,
        pool=pool,
        patient=patient,
        window=window(slot),
        at_home=place_kind in appointments.HOME_PLACES,
        own_id=own.id if own is not None else None,
        zone=program.zone,
        now=now or utcnow(),
    )
    return Suggestions(ranking.candidates, own_note(own, ranking.left_out))


@dataclass(frozen=True)
class BookedVisit:
    """What the candidates to take over a booked visit are ranked on: the appointment's columns, its patient's
    commune and its program's zone — from the ORM entity (`for_appointment`) or a plain row (GET candidates)."""

    id: int
    cpts_id: int
    patient_id: int
    kind: AppointmentKind
    place_kind: PlaceKind
    accompanying_id: int | None
    accompaniment_window: tuple[dt.datetime, dt.datetime]
    patient_commune: str | None
    zone: str


def for_appointment(session: Session, appointment: Appointment, *, now: dt.datetime) -> Suggestions:
    """`for_visit` of an appointment entity."""
    # The pool is read by the driver, which does not autoflush: what this unit of work changed (an offer declined,
    # the accompanying IDEL) is written first, as the ORM's reads did.
    session.flush()
    if appointment.kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return Suggestions([], None)
    visit = BookedVisit(
        id=appointment.id,
        cpts_id=appointment.cpts_id,
        patient_id=appointment.patient_id,
        kind=appointment.kind,
        place_kind=appointment.place_kind,
        accompanying_id=appointment.accompanying_id,
        accompaniment_window=appointment.accompaniment_window,
        patient_commune=appointment.patient.commune_insee,
        zone=appointments.appointment_zone(session, appointment),
    )
    return for_visit(session, visit, now=now)


def for_visit(session: Session, visit: BookedVisit, *, now: dt.datetime) -> Suggestions:
    """The IDELs who may take over a booked visit, best first, as the second round offers it; those who declined it
    are left out. No one for an appointment without accompaniment (télésoin, in person). The pool, the own IDEL
    and their facts come in one statement (idel_ranking.visit_pool)."""
    if visit.kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return Suggestions([], None)
    members = idel_ranking.visit_pool(
        session,
        cpts_id=visit.cpts_id,
        patient_id=visit.patient_id,
        appointment_id=visit.id,
        window=visit.accompaniment_window,
        zone=visit.zone,
        now=now,
    )
    own = next((m.professional for m in members if m.is_own), None)
    own_id = own.id if own else None
    ranking = idel_ranking.rank_members(
        [m for m in members if m.in_pool and not m.declined],
        patient_commune=visit.patient_commune,
        window=visit.accompaniment_window,
        at_home=visit.place_kind in appointments.HOME_PLACES,
        own_id=own_id,
        zone=visit.zone,
    )
    left_out = ranking.left_out | {m.professional.id: "a refusé cette visite" for m in members if m.declined}
    # The own IDEL holding this very visit is not "absent": she is the one asked.
    held = own_id is not None and own_id == visit.accompanying_id
    return Suggestions(ranking.candidates, None if held else own_note(own, left_out))


def own_note(own: idel_ranking.Ranked | None, left_out: dict[int, str]) -> str | None:
    """Why the patient's own IDEL is not among the candidates, in a sentence; None when she is, or there is none."""
    if own is None:
        return None
    if own.id in left_out:
        return f"{own.full_name}, IDEL du patient, {left_out[own.id]}."
    if not own.accompanies_teleconsultation or not own.is_active:
        return f"{own.full_name}, IDEL du patient, n'accompagne pas de téléconsultation."
    return None
