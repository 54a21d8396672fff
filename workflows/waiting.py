"""The waiting list: a patient waits for a program of the CPTS (from a referral, or from the patient's page), with
an urgency and what a slot must fit (weekdays, place, needs). When a slot of the program frees, the coordinator's
task (workflows.freed_slots) lists the waiting patients it fits, best first; offering it books the patient through
workflows.appointments.book — every booking rule applies — and resolves the entry and the task at once."""

import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, Select, bindparam, case, exists, func, select, update
from sqlalchemy.orm import Session, joinedload

from hub import audit
from hub.db import UTCDateTime, rows_changed, utcnow
from hub.errors import Conflict, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    WAITING_URGENCY_RANK,
    Actor,
    Allocation,
    AllocationResource,
    Appointment,
    FreedSlotOutcome,
    FreedSlotTask,
    Patient,
    PlaceKind,
    Referral,
    ReferralState,
    SessionProgram,
    Slot,
    SlotState,
    Urgency,
    User,
    WaitingEntry,
    WaitingState,
    WaitingUrgency,
)
from scheduling.slots import has_seat_left
from workflows import accompaniment, appointments, freed_slots, referrals

WEEKDAYS = ("Lundi", "Mardi", "Mercredi", "Jeudi", "Vendredi", "Samedi", "Dimanche")
# A referral's urgency as the waiting list says it.
FROM_REFERRAL = {
    Urgency.URGENT: WaitingUrgency.URGENT,
    Urgency.SOON: WaitingUrgency.WITHIN_15_DAYS,
    Urgency.ROUTINE: WaitingUrgency.WHEN_POSSIBLE,
}
FIRST_MATCHES = 3  # waiting patients a task shows on the desk
ALREADY_WAITING = "Ce patient est déjà en liste d'attente pour ce programme."
TASK_TAKEN = "Ce créneau vient d'être proposé par quelqu'un d'autre : il n'est plus à proposer."
ENTRY_TAKEN = "Ce patient vient d'obtenir un autre créneau : il n'est plus en liste d'attente."


# --- the list ---------------------------------------------------------------------------------------------


def add(
    session: Session,
    actor: User,
    *,
    patient: Patient,
    program: SessionProgram,
    urgency: WaitingUrgency,
    weekdays: list[int] | None = None,
    place_kind: PlaceKind | None = None,
    needs: list[str] | None = None,
    note: str | None = None,
    referral: Referral | None = None,
) -> WaitingEntry:
    """Put the patient on the program's waiting list; refused when they already wait for it. A referral's entry
    keeps the link: offering a slot then schedules the referral."""
    if patient.cpts_id != actor.cpts_id or program.cpts_id != actor.cpts_id:
        raise NotFound("Patient ou programme introuvable.")
    errors = _constraint_errors(program, weekdays or [], place_kind, needs or [], referral)
    if errors:
        raise ValidationFailed(errors)
    if _active_entry(session, patient.id, program.id) is not None:
        raise Conflict(ALREADY_WAITING)
    entry = WaitingEntry(
        cpts_id=program.cpts_id,
        patient_id=patient.id,
        program_id=program.id,
        referral_id=referral.id if referral else None,
        urgency=urgency,
        weekdays=json.dumps(sorted(set(weekdays or []))),
        place_kind=place_kind,
        needs=json.dumps(needs or []),
        note=(note or "").strip() or None,
        created_by_user_id=actor.id,
    )
    session.add(entry)
    session.flush()  # the audit line names the new id; a concurrent twin meets the partial unique index here
    audit.record(session, actor=actor, action="waiting.add", target=entry, cpts_id=entry.cpts_id)
    return entry


def add_from_referral(session: Session, actor: User, referral: Referral, **constraints) -> WaitingEntry:
    """The coordinator cannot schedule an accepted referral now: the patient waits for its program, with the
    referral's urgency and needs unless said otherwise."""
    if referral.state is not ReferralState.ACCEPTED or referral.target_program_id is None:
        raise RuleViolation("Seul un adressage accepté, vers un programme, peut attendre un créneau.")
    program = session.get_one(SessionProgram, referral.target_program_id)
    constraints.setdefault("urgency", FROM_REFERRAL[referral.urgency])
    constraints.setdefault("needs", referrals.needs_of(referral))
    return add(session, actor, patient=referral.patient, program=program, referral=referral, **constraints)


def _constraint_errors(program, weekdays, place_kind, needs, referral) -> dict[str, str]:
    errors = {}
    if any(day not in range(7) for day in weekdays):
        errors["weekdays"] = "Jours inconnus : choisissez parmi lundi à dimanche."
    if place_kind is not None and place_kind not in accompaniment.place_choices(program):
        errors["place_kind"] = "Ce lieu n'est pas possible pour les séances de ce programme."
    if unknown := [need for need in needs if need not in referrals.NEEDS]:
        errors["needs"] = f"Besoins inconnus : {', '.join(unknown)}."
    if referral is not None and referral.target_program_id != program.id:
        errors["program_id"] = "L'adressage vise un autre programme."
    return errors


def _active_entry(session: Session, patient_id: int, program_id: int) -> WaitingEntry | None:
    return session.scalar(
        select(WaitingEntry).where(
            WaitingEntry.patient_id == patient_id,
            WaitingEntry.program_id == program_id,
            WaitingEntry.state == WaitingState.WAITING,
        )
    )


def withdraw(session: Session, actor: Actor, entry: WaitingEntry, *, reason: str, now=None) -> WaitingEntry:
    """The patient no longer waits (care found elsewhere, moved, declined…): the reason is kept."""
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez pourquoi le patient quitte la liste d'attente."})
    won = rows_changed(
        session,
        update(WaitingEntry)
        .where(WaitingEntry.id == entry.id, WaitingEntry.state == WaitingState.WAITING)
        .values(
            state=WaitingState.WITHDRAWN,
            withdraw_reason=reason.strip()[:300],
            resolved_at=now or utcnow(),
            resolved_by_user_id=actor.id,
        )
        .execution_options(synchronize_session=False),
    )
    if won != 1:
        raise Conflict("Ce patient n'est plus en liste d'attente.")
    session.refresh(entry)
    audit.record(session, actor=actor, action="waiting.withdraw", target=entry, cpts_id=entry.cpts_id)
    return entry


def get_entry(session: Session, entry_id: int, *, cpts_id: int, action: str) -> WaitingEntry:
    """The entry of the CPTS, else a 404 as if it did not exist, the refusal audited."""
    entry = session.get(WaitingEntry, entry_id)
    if entry is None or entry.cpts_id != cpts_id:
        raise NotFound(
            "Inscription en liste d'attente introuvable.",
            audit_action=f"waiting.{action}",
            audit_target=("waiting_entries", entry_id),
        )
    return entry


@dataclass(frozen=True)
class ProgramQueue:
    program: SessionProgram
    waiting: int
    urgent: int


def waiting_list(
    session: Session, cpts_id: int, *, program_id: int | None = None, offset: int = 0, limit: int | None = None
) -> tuple[list[WaitingEntry], int]:
    """The CPTS's waiting patients (of one program if given), the most urgent first, then who waited longest: a
    page of them (from `offset`, at most `limit`) and how many there are."""
    conditions = [WaitingEntry.cpts_id == cpts_id, WaitingEntry.state == WaitingState.WAITING]
    if program_id is not None:
        conditions.append(WaitingEntry.program_id == program_id)
    query = (
        select(WaitingEntry)
        .options(joinedload(WaitingEntry.patient), joinedload(WaitingEntry.program))
        .where(*conditions)
        .order_by(_URGENCY_ORDER, WaitingEntry.created_at, WaitingEntry.id)
        .offset(offset)
        .limit(limit)
    )
    total = session.scalar(select(func.count(WaitingEntry.id)).where(*conditions)) or 0
    return list(session.scalars(query)), total


# WAITING_URGENCY_RANK in SQL, to order and page in the database.
_URGENCY_ORDER = case(*((WaitingEntry.urgency == urgency, rank) for urgency, rank in WAITING_URGENCY_RANK.items()))


def queues(session: Session, cpts_id: int) -> list[ProgramQueue]:
    """Each program of the CPTS with patients waiting: how many, how many urgent."""
    urgent = func.sum(case((WaitingEntry.urgency == WaitingUrgency.URGENT, 1), else_=0))
    rows = session.execute(
        select(SessionProgram, func.count(WaitingEntry.id), urgent)
        .join(WaitingEntry, WaitingEntry.program_id == SessionProgram.id)
        .where(WaitingEntry.cpts_id == cpts_id, WaitingEntry.state == WaitingState.WAITING)
        .group_by(SessionProgram.id)
        .order_by(SessionProgram.name)
    ).all()
    return [ProgramQueue(program, int(count), int(urgent or 0)) for program, count, urgent in rows]


def _rank(entry: WaitingEntry) -> tuple:
    return (WAITING_URGENCY_RANK[entry.urgency], entry.created_at, entry.id)


def weekdays_of(entry: WaitingEntry) -> list[int]:
    return json.loads(entry.weekdays or "[]")


def needs_of(entry: WaitingEntry) -> list[str]:
    return json.loads(entry.needs or "[]")


def waited_days(entry: WaitingEntry, *, now: dt.datetime) -> int:
    return max(0, (now - entry.created_at).days)


# --- matching a freed slot ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A waiting patient for a slot: whether the slot fits, and why (or what does not), in French."""

    entry: WaitingEntry
    fits: bool
    reasons: list[str]
    problems: list[str]
    place_kind: PlaceKind  # where the session would take place


def matches_for(session: Session, slot: Slot, *, now: dt.datetime | None = None) -> list[Match]:
    """The waiting entries of the slot's program, those the slot fits first — the day in the territory's zone is
    one they can come, the place they need is possible for the program, they hold nothing else at that time —
    each group the most urgent first, then who waited longest."""
    return _matches_of(session, [slot], now=now or utcnow())[slot.id]


def _matches_of(session: Session, slots: list[Slot], *, now: dt.datetime) -> dict[int, list[Match]]:
    """matches_for of several slots in three queries, whatever their number (the desk's cost stays constant)."""
    if not slots:  # the desk with no freed slot to offer: no statement
        return {}
    program_ids = {slot.program_id for slot in slots}
    entries = sorted(
        session.scalars(
            select(WaitingEntry)
            .options(joinedload(WaitingEntry.patient), joinedload(WaitingEntry.program))
            .where(WaitingEntry.program_id.in_(program_ids), WaitingEntry.state == WaitingState.WAITING)
        ),
        key=_rank,
    )
    windows = {slot.id: accompaniment.window(slot) for slot in slots}
    holds = _patient_holds(session, [e.patient_id for e in entries], list(windows.values()))
    result = {}
    for slot in slots:
        start, end = windows[slot.id]
        busy = {patient_id for patient_id, held_from, held_to in holds if held_from < end and start < held_to}
        program = slot.program
        day = slot.starts_at.astimezone(ZoneInfo(program.zone)).weekday()
        matches = [
            _match(entry, program, day, entry.patient_id in busy, now=now)
            for entry in entries
            if entry.program_id == slot.program_id
        ]
        result[slot.id] = sorted(matches, key=lambda m: (not m.fits, _rank(m.entry)))
    return result


def _match(entry: WaitingEntry, program: SessionProgram, day: int, busy: bool, *, now: dt.datetime) -> Match:
    reasons = [f"{entry.urgency_label}, en attente depuis {waited_days(entry, now=now)} j"]
    problems = []
    days = weekdays_of(entry)
    if not days:
        reasons.append("disponible tous les jours")
    elif day in days:
        reasons.append(f"disponible le {WEEKDAYS[day].lower()}")
    else:
        problems.append(f"pas disponible le {WEEKDAYS[day].lower()}")
    place = entry.place_kind or accompaniment.suggested_place(program, needs_of(entry))
    if place not in accompaniment.place_choices(program):
        problems.append("le lieu demandé n'est pas possible pour ce programme")
    if busy:
        problems.append("déjà un rendez-vous à cette heure")
    return Match(entry, not problems, reasons, problems, place)


def _patient_holds(session: Session, patient_ids: list[int], windows: list[tuple[dt.datetime, dt.datetime]]):
    """(patient, from, to) of the patients' allocations over the span of the windows."""
    if not patient_ids or not windows:
        return []
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    return session.execute(
        select(Allocation.resource_id, Allocation.starts_at, Allocation.ends_at).where(
            Allocation.resource_kind == AllocationResource.PATIENT,
            Allocation.resource_id.in_(set(patient_ids)),
            Allocation.starts_at < end,
            Allocation.ends_at > start,
        )
    ).all()


# --- the coordinator's tasks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskView:
    task: FreedSlotTask
    matches: list[Match]

    @property
    def best(self) -> list[Match]:
        return [m for m in self.matches if m.fits][:FIRST_MATCHES]


def _open_tasks_query(cpts_id: int | ColumnElement[int], now: dt.datetime | ColumnElement[dt.datetime]):
    return (
        select(FreedSlotTask)
        .join(Slot, Slot.id == FreedSlotTask.slot_id)
        .join(SessionProgram, SessionProgram.id == Slot.program_id)
        .where(
            FreedSlotTask.cpts_id == cpts_id,
            FreedSlotTask.resolved_at.is_(None),
            Slot.state == SlotState.OPEN,
            Slot.starts_at > now,
            has_seat_left(),  # a seat taken another way (a direct booking, a referral) leaves nothing to offer
        )
    )


def open_task_count(session: Session, cpts_id: int, *, now: dt.datetime) -> int:
    return session.scalar(open_task_count_query(cpts_id, now=now)) or 0


def open_task_count_query(cpts_id: int | ColumnElement[int], *, now: dt.datetime | ColumnElement[dt.datetime]):
    """open_task_count's statement, for a desk that reads it with its other counts."""
    return select(func.count()).select_from(_open_tasks_query(cpts_id, now).subquery())


def open_tasks(
    session: Session, cpts_id: int, *, now: dt.datetime, offset: int = 0, limit: int | None = None
) -> list[TaskView]:
    """The freed slots still to offer (future, open), the soonest first (from `offset`, at most `limit`), each with
    its waiting patients."""
    query = _open_tasks_statement().offset(offset).limit(limit)
    tasks = session.scalars(query, {"cpts_id": cpts_id, "now": now}).all()
    matches = _matches_of(session, [task.slot for task in tasks], now=now)
    return [TaskView(task, matches[task.slot_id]) for task in tasks]


@functools.cache
def _open_tasks_statement() -> Select:
    """open_tasks' statement, built once with the CPTS and the time as parameters: the coordinator's desk reads it
    on every view, and building it cost more CPU than running it."""
    query = _open_tasks_query(bindparam("cpts_id", type_=Integer), bindparam("now", type_=UTCDateTime))
    return query.options(joinedload(FreedSlotTask.slot).joinedload(Slot.program)).order_by(
        Slot.starts_at, FreedSlotTask.id
    )


def has_open_task(session: Session, slot_id: int) -> bool:
    """Whether the slot is to offer to the waiting patients (what a cancellation's confirmation says)."""
    open_ = (FreedSlotTask.slot_id == slot_id) & FreedSlotTask.resolved_at.is_(None)
    return bool(session.scalar(select(exists().where(open_))))


def get_task(session: Session, task_id: int, *, cpts_id: int) -> FreedSlotTask:
    task = session.get(FreedSlotTask, task_id)
    if task is None or task.cpts_id != cpts_id:
        raise NotFound(
            "Créneau libéré introuvable.", audit_action="freed_slot.offer", audit_target=("freed_slot_tasks", task_id)
        )
    return task


def offer(
    session: Session,
    actor: Actor,
    task: FreedSlotTask,
    entry: WaitingEntry,
    *,
    upload_dir: Path,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book the waiting patient into the freed slot, in one action: the booking goes through
    workflows.appointments.book (or schedules the entry's referral), with every rule of a booking, at the place
    the patient asked for or their needs call for. The task and the entry are claimed with conditional updates
    (the entry by the booking itself), so that of two coordinators offering one slot, or one patient two slots, at
    once, one wins and the other gets a 409. Anything refused leaves everything as it was (the caller's
    transaction rolls back)."""
    now = now or utcnow()
    slot = task.slot
    if entry.cpts_id != task.cpts_id or entry.program_id != slot.program_id:
        raise ValidationFailed({"entry_id": "Ce patient n'attend pas un créneau de ce programme."})
    match = next((m for m in matches_for(session, slot, now=now) if m.entry.id == entry.id), None)
    if match is None:  # no longer waiting
        raise Conflict(ENTRY_TAKEN)
    if not match.fits:
        raise RuleViolation(f"Ce créneau ne convient pas à ce patient : {', '.join(match.problems)}.")
    _claim_task(session, task, actor, entry, now=now)
    appointment = _book(session, actor, slot, entry, match.place_kind, upload_dir=upload_dir, now=now)
    # The booking books the patient's waiting entry (workflows.freed_slots.patient_booked) with a conditional
    # update: of two offers of one patient at once, the second finds it booked by the first.
    session.refresh(entry)
    if entry.appointment_id != appointment.id:
        raise Conflict(ENTRY_TAKEN)
    audit.record(
        session,
        actor=actor,
        action="waiting.offer",
        target=entry,
        cpts_id=entry.cpts_id,
        details={"slot_id": slot.id, "appointment_id": appointment.id, "task_id": task.id},
    )
    # A group session freed of several seats keeps one open task at a time: with this seat taken, the next one
    # (if any, and if someone still waits) becomes the next task.
    freed_slots.slot_freed(
        session, slot, reason=task.reason, now=now, cancelled_appointment_id=task.cancelled_appointment_id
    )
    return appointment


def _claim_task(session: Session, task: FreedSlotTask, actor: Actor, entry: WaitingEntry, *, now) -> None:
    won = rows_changed(
        session,
        update(FreedSlotTask)
        .where(FreedSlotTask.id == task.id, FreedSlotTask.resolved_at.is_(None))
        .values(resolved_at=now, resolved_by_user_id=actor.id, outcome=FreedSlotOutcome.OFFERED, entry_id=entry.id)
        .execution_options(synchronize_session=False),
    )
    if won != 1:
        raise Conflict(TASK_TAKEN)
    session.refresh(task)


def _book(session, actor, slot, entry, place: PlaceKind, *, upload_dir: Path, now) -> Appointment:
    referral = session.get(Referral, entry.referral_id) if entry.referral_id else None
    if referral is not None and referral.state is ReferralState.ACCEPTED:
        return referrals.schedule(session, actor, referral, slot=slot, upload_dir=upload_dir, place_kind=place, now=now)
    return appointments.book(session, actor, slot=slot, patient=entry.patient, place_kind=place, now=now)
