"""Booking a patient into a series — of one program's sessions (every other Monday for three months…), or a
pathway's steps: every occurrence is checked at once — one query for all their holds — and each conflict is named
before anything is saved; then the free ones are booked, or all of them or nothing, in the caller's one
transaction."""

import datetime as dt
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.db import utcnow
from hub.errors import Conflict, HubError, ValidationFailed
from hub.formatting import french_datetime
from hub.models import (
    Actor,
    AllocationResource,
    Appointment,
    AppointmentKind,
    CarePathway,
    CarePathwayStep,
    Modality,
    Patient,
    PlaceKind,
    Professional,
    Slot,
    SlotState,
    StepState,
)
from scheduling.bookings import Hold, find_conflicts, label_of
from scheduling.recurrence import next_occurrences, occurrences, public_holidays
from scheduling.slots import recurrence_of
from workflows import appointments, eligibility, pathways

MAX_OCCURRENCES = 52
HOLIDAY = "jour férié"
CLOSED = "fermeture"
CANCELLED = "séance annulée"
NOT_OPEN_YET = "créneau pas encore ouvert (au-delà de l'horizon du programme)"
PAST = "créneau passé"
FULL = "séance complète"
PATIENT_BUSY = "patient déjà en séance"


@dataclass(frozen=True)
class Series:
    """What the coordinator asks: from a first slot, its place in every `every`-th occurrence of the program,
    `count` sessions or until a local day (included)."""

    first_slot: Slot
    patient: Patient
    place_kind: PlaceKind
    every: int = 1
    count: int | None = None
    until: dt.date | None = None
    accompanying: Professional | None = None
    telesoin: appointments.TelesoinAct | None = None

    @classmethod
    def asked(cls, session: Session, *, first_slot: Slot, patient: Patient, data: dict) -> "Series":
        """The series as the API and the page name its fields (hub.schemas.scheduling.SeriesIn)."""
        accompanying = None
        if data.get("accompanying_id"):
            accompanying = session.get(Professional, data["accompanying_id"])
            if accompanying is None or accompanying.cpts_id != patient.cpts_id:
                raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
        return cls(
            first_slot=first_slot,
            patient=patient,
            place_kind=data.get("place_kind") or appointments.default_place(first_slot.program),
            every=data["every"],
            count=data.get("count"),
            until=data.get("until"),
            accompanying=accompanying,
            telesoin=appointments.TelesoinAct.from_booking(data),
        )


@dataclass
class Occurrence:
    starts_at: dt.datetime
    slot: Slot | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class SeriesConflict(Conflict):
    title = "Série en conflit"
    type_slug = "series-conflict"

    def __init__(self, conflicting: list[Occurrence], *, zone: str):
        named = [describe(o, zone) for o in conflicting]
        super().__init__(
            "Rien n'a été réservé : " + " ; ".join(named) + ".",
            occurrences=[as_dict(o, zone) for o in conflicting],
        )


def describe(occurrence: Occurrence, zone: str) -> str:
    """« lundi 12 janvier 2026, 14 h 00 : Dr X déjà réservé(e) »."""
    return f"{french_datetime(occurrence.starts_at, zone)} : {', '.join(occurrence.problems)}"


def as_dict(occurrence: Occurrence, zone: str) -> dict:
    return {
        "starts_at": occurrence.starts_at.isoformat(),
        "label": french_datetime(occurrence.starts_at, zone),
        "slot_id": occurrence.slot.id if occurrence.slot else None,
        "ok": occurrence.ok,
        "problems": list(occurrence.problems),
    }


def check(session: Session, series: Series, *, now: dt.datetime | None = None) -> list[Occurrence]:
    """Each occurrence of the series with what stops it (empty when free); nothing is written."""
    now = now or utcnow()
    program = series.first_slot.program
    if program.cpts_id != series.patient.cpts_id:
        raise ValidationFailed({"patient_id": "Patient inconnu dans la CPTS."})
    kind = program.appointment_kind
    if kind in appointments.REMOTE_KINDS:
        # Said once for the whole series, before its occurrences: every one of them would be refused for it.
        eligibility.require_eligible(session, series.patient, Modality(kind.value))
    found = _occurrences(session, series)
    with_slot = [o for o in found if o.slot is not None]
    seats = appointments.participants_count(session, [o.slot.id for o in with_slot if o.slot is not None])
    accompanying = _accompanying(session, series)
    owner: dict[Hold, Occurrence] = {}
    for occurrence in with_slot:
        slot = occurrence.slot
        assert slot is not None  # with_slot
        if slot.state is SlotState.CANCELLED:
            occurrence.problems.append(CANCELLED)
            continue
        if slot.starts_at <= now:
            occurrence.problems.append(PAST)
            continue
        taken = seats.get(slot.id, 0)
        if program.is_group and taken >= program.capacity:
            occurrence.problems.append(FULL)
            continue
        holds = _holds(session, program, slot, series.patient, accompanying, seats_taken=taken)
        owner |= {hold: occurrence for hold in holds}
    for hold in find_conflicts(session, list(owner)):
        owner[hold].problems.append(_busy(session, hold))
    return found


def book(
    session: Session,
    actor: Actor,
    series: Series,
    *,
    all_or_nothing: bool,
    now: dt.datetime | None = None,
) -> tuple[list[Appointment], list[Occurrence]]:
    """Book the series: with `all_or_nothing`, every occurrence or, on the first conflict, raise SeriesConflict
    naming them all (the caller's transaction rolls back: nothing saved); otherwise the free ones, each in its
    savepoint, and return (booked, occurrences left out with why). A field of the request refused (ValidationFailed)
    refuses the whole series."""
    now = now or utcnow()
    zone = series.first_slot.program.zone
    planned = check(session, series, now=now)
    left_out = [o for o in planned if not o.ok]
    if all_or_nothing and left_out:
        raise SeriesConflict(left_out, zone=zone)
    booked = []
    for occurrence in planned:
        if not occurrence.ok:
            continue
        assert occurrence.slot is not None  # an occurrence without a slot has a problem
        try:
            # Each booking runs all of its own rules again (eligibility, consent, télésoin acts, 20 % share).
            with session.begin_nested():
                booked.append(_book_one(session, actor, series, occurrence.slot, now=now))
        except ValidationFailed:
            raise  # the request's own fields (a télésoin act missing…): the same for every session, said at once
        except HubError as exc:
            occurrence.problems.append(exc.detail)
            if all_or_nothing:
                raise SeriesConflict([occurrence], zone=zone) from exc
            left_out.append(occurrence)
    audit.record(
        session,
        actor=actor,
        action="appointment.book_series",
        target=series.patient,
        cpts_id=series.patient.cpts_id,
        details={
            "program_id": series.first_slot.program_id,
            "booked": [a.id for a in booked],
            "left_out": len(left_out),
            "all_or_nothing": all_or_nothing,
        },
    )
    return booked, sorted(left_out, key=lambda o: o.starts_at)


def _book_one(session: Session, actor: Actor, series: Series, slot: Slot, *, now: dt.datetime) -> Appointment:
    return appointments.book(
        session,
        actor,
        slot=slot,
        patient=series.patient,
        place_kind=series.place_kind,
        accompanying=series.accompanying,
        telesoin=series.telesoin,
        now=now,
    )


def _occurrences(session: Session, series: Series) -> list[Occurrence]:
    """The series' occurrences, from the rule alone (holidays, closures and cancelled ones included, so that they
    are named), each with its slot at the first slot's place when there is one."""
    first = series.first_slot
    program = first.program
    kept_rule = recurrence_of(program)
    every_day = replace(kept_rule, exdates=(), skip_public_holidays=False, closed_periods=())
    after = first.occurrence_start - dt.timedelta(seconds=1)
    wanted = MAX_OCCURRENCES * series.every if series.count is None else series.count * series.every
    raw = next_occurrences(every_day, after=after, count=wanted)[:: series.every]
    if series.until is not None:
        raw = [o for o in raw if o.local_start.date() <= series.until]
    raw = raw[:MAX_OCCURRENCES]
    if not raw:
        return []
    kept = {
        o.start
        for o in occurrences(kept_rule, window_start=raw[0].start, window_end=raw[-1].start + dt.timedelta(seconds=1))
    }
    slots = {
        s.occurrence_start: s
        for s in session.scalars(
            select(Slot).where(
                Slot.program_id == program.id,
                Slot.position == first.position,
                Slot.occurrence_start.in_([o.start for o in raw]),
            )
        )
    }
    offset = first.starts_at - first.occurrence_start
    found = []
    for o in raw:
        slot = slots.get(o.start)
        occurrence = Occurrence(slot.starts_at if slot else o.start + offset, slot)
        if slot is None:
            occurrence.problems.append(_why_no_slot(program, o.local_start.date(), is_kept=o.start in kept))
        found.append(occurrence)
    return found


def _why_no_slot(program, day: dt.date, *, is_kept: bool) -> str:
    if is_kept:
        return NOT_OPEN_YET
    if program.skip_public_holidays and day in public_holidays(day.year):
        return HOLIDAY
    closure = next((c for c in program.closures if c.first_day <= day <= c.last_day), None)
    if closure is not None:
        return f"{CLOSED} ({closure.reason})" if closure.reason else CLOSED
    return CANCELLED


def _accompanying(session: Session, series: Series) -> Professional | None:
    """Who accompanies every session of the series: the IDEL chosen or the patient's own (or the officine's
    pharmacist), as a single booking would choose."""
    program = series.first_slot.program
    if program.appointment_kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return None
    return appointments.choose_accompanying(session, program, series.patient, series.place_kind, series.accompanying)


def _holds(
    session: Session, program, slot: Slot, patient: Patient, accompanying: Professional | None, *, seats_taken: int
) -> list[Hold]:
    """What booking the patient into the slot would hold: a group session with participants already holds its
    performer, room and kit for the slot, so a new participant adds only their own holds."""
    draft = _draft(program, slot, patient, accompanying)
    holds = appointments.participant_holds(session, draft)
    if not (program.is_group and seats_taken):
        holds = appointments.session_holds(session, draft) + holds
    return holds


def _draft(program, slot: Slot, patient: Patient, accompanying: Professional | None) -> Appointment:
    """The appointment a booking would make, never added to the session: what it would hold."""
    assisted = program.appointment_kind is AppointmentKind.ASSISTED_TELECONSULTATION
    before = dt.timedelta(minutes=program.accompaniment_before_minutes)
    after = dt.timedelta(minutes=program.accompaniment_after_minutes)
    return Appointment(
        patient_id=patient.id,
        performer_id=program.performer_id,
        accompanying_id=accompanying.id if accompanying else None,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        accompaniment_starts_at=slot.starts_at - before if assisted else None,
        accompaniment_ends_at=slot.ends_at + after if assisted else None,
        room_id=program.room_id,
        kit_id=program.kit_id,
    )


def _busy(session: Session, hold: Hold) -> str:
    if hold.resource_kind is AllocationResource.PATIENT:
        return PATIENT_BUSY
    return f"{label_of(session, hold)} déjà réservé(e)"


# --- a pathway's steps ------------------------------------------------------------------------------------

NO_SLOT = "aucun créneau libre de la modalité et de la profession de l'étape"
TELESOIN_STEP = "séance de télésoin : son acte se précise en la programmant seule"


@dataclass
class StepPlan:
    """A planned step of a pathway with the slot proposed for it (the first free one of its modality and
    profession from its due date) and what stops it."""

    step: CarePathwayStep
    slot: Slot | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class PathwayConflict(Conflict):
    title = "Étapes en conflit"
    type_slug = "pathway-steps-conflict"

    def __init__(self, conflicting: list[StepPlan], *, zone: str):
        named = [f"« {p.step.name} » : {', '.join(p.problems)}" for p in conflicting]
        super().__init__(
            "Rien n'a été programmé : " + " ; ".join(named) + ".",
            steps=[step_as_dict(p, zone) for p in conflicting],
        )


def step_as_dict(plan: StepPlan, zone: str) -> dict:
    return {
        "step_id": plan.step.id,
        "name": plan.step.name,
        "due_on": plan.step.due_on.isoformat(),
        "slot_id": plan.slot.id if plan.slot else None,
        "starts_at": plan.slot.starts_at.isoformat() if plan.slot else None,
        "label": french_datetime(plan.slot.starts_at, zone) if plan.slot else None,
        "ok": plan.ok,
        "problems": list(plan.problems),
    }


def check_pathway(session: Session, pathway: CarePathway, *, now: dt.datetime | None = None) -> list[StepPlan]:
    """Each planned step of the pathway that goes into the planner, with its proposed slot (never one slot, nor
    two overlapping ones, for two steps) and what stops it; every step's holds checked in one query; nothing is
    written. In-person steps and téléexpertises are arranged outside the planner and not listed."""
    now = now or utcnow()
    patient = session.get_one(Patient, pathway.patient_id)
    steps = [s for s in pathway.steps if s.state is StepState.PLANNED and s.modality in pathways.STEP_PROGRAM_KINDS]
    for modality in sorted({s.modality for s in steps} - {Modality.TELESOIN}):
        eligibility.require_eligible(session, patient, modality)
    plans: list[StepPlan] = []
    for step in steps:
        if step.modality is Modality.TELESOIN:
            plans.append(StepPlan(step, None, [TELESOIN_STEP]))
            continue
        chosen = [p.slot for p in plans if p.slot is not None]
        candidates = pathways.slots_for_step(session, step, cpts_id=pathway.cpts_id, now=now)
        slot = next((c for c in candidates if not any(_overlap(c, other) for other in chosen)), None)
        plans.append(StepPlan(step, slot, [] if slot is not None else [NO_SLOT]))
    placed = [p for p in plans if p.slot is not None]
    seats = appointments.participants_count(session, [p.slot.id for p in placed if p.slot is not None])
    owner: dict[Hold, StepPlan] = {}
    for plan in placed:
        slot = plan.slot
        assert slot is not None  # placed
        program = slot.program
        accompanying = appointments.choose_accompanying(
            session, program, patient, appointments.default_place(program), None
        )
        holds = _holds(session, program, slot, patient, accompanying, seats_taken=seats.get(slot.id, 0))
        owner |= {hold: plan for hold in holds}
    for hold in find_conflicts(session, list(owner)):
        owner[hold].problems.append(_busy(session, hold))
    return plans


def book_pathway(
    session: Session,
    actor: Actor,
    pathway: CarePathway,
    *,
    all_or_nothing: bool,
    zone: str,
    now: dt.datetime | None = None,
) -> tuple[list[Appointment], list[StepPlan]]:
    """Book the pathway's steps into their proposed slots: with `all_or_nothing`, all of them or, on a conflict,
    raise PathwayConflict naming them (the caller's transaction rolls back); otherwise the free ones, each in its
    savepoint, and return (booked, steps left out with why). `zone`: the territory's, for the messages."""
    now = now or utcnow()
    plans = check_pathway(session, pathway, now=now)
    left_out = [p for p in plans if not p.ok]
    if all_or_nothing and left_out:
        raise PathwayConflict(left_out, zone=zone)
    booked = []
    for plan in plans:
        if not plan.ok:
            continue
        assert plan.slot is not None  # a step without a slot has a problem
        try:
            with session.begin_nested():
                booked.append(
                    pathways.book_step_into_slot(
                        session,
                        actor,
                        plan.step,
                        plan.slot,
                        place_kind=appointments.default_place(plan.slot.program),
                        now=now,
                    )
                )
        except HubError as exc:
            plan.problems.append(exc.detail)
            if all_or_nothing:
                raise PathwayConflict([plan], zone=zone) from exc
            left_out.append(plan)
    audit.record(
        session,
        actor=actor,
        action="pathway.schedule",
        target=pathway,
        cpts_id=pathway.cpts_id,
        details={"booked": [a.id for a in booked], "left_out": len(left_out), "all_or_nothing": all_or_nothing},
    )
    return booked, sorted(left_out, key=lambda p: p.step.position)


def _overlap(a: Slot, b: Slot) -> bool:
    return a.starts_at < b.ends_at and b.starts_at < a.ends_at
