"""Who was there at a session (issue 16, item 3): the patient, the accompanying professional and the performer,
recorded by a person — the performer, the accompanying professional or the coordination — after the session's
start, never by a job (no scheduler job calls this module). Each absence is its own outcome:

- the patient absent is the no-show (workflows.appointments.record_no_show): no act and no accompaniment fee for
  the session (workflows.fees accrues only what is done), the slot not booked again since it is past, counted by
  the no-show indicator. A late cancellation (cancel() within 24 h) is a cancellation, never a no-show
  (DESIGN.md, from the public trackers: "a late cancellation is not a no-show").
- the accompanying professional absent: no accompaniment fee for her (TLS/TLL/TLD/TLM pay the accompaniment or
  the assistance actually given, seed 004); the session may still take place (by telephone, degraded, or without
  accompaniment) or be booked again, and the coordination finds it under « À reprogrammer » until then. A fee
  already accrued for her is cancelled; one already declared or paid is left to the coordination to correct.
- the performer absent: no act (TC/TCG or the télésoin act pays the act done, seed 004) and therefore no
  accompaniment, which follows the act it accompanies; the session leaves the done path (state « Reportée —
  absence du professionnel »), the patient and the accompanying professional are told (outbox, a date and a time,
  nothing of health) and the coordination books it again from « À reprogrammer » (a referral's session: its
  referral goes back to « à programmer », scheduled again from its page). The seeds say nothing of a
  performer's absence: these consequences are the hub's choice.

When the performer and the patient are both absent, the performer's absence decides (the session could not have
taken place, so the patient is not counted as a no-show); this too is the hub's choice, the seeds being silent.
"""

import datetime as dt
import functools
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from hub import audit
from hub.db import utcnow
from hub.errors import InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    APPOINTMENT_STATE_LABELS,
    Actor,
    Appointment,
    AppointmentState,
    Attendance,
    FeeEntry,
    FeeStatus,
    Referral,
    ReferralState,
    SessionProgram,
    Slot,
    SlotState,
)
from scheduling.slots import has_seat_left
from workflows import appointments, fees, referrals, sas

S = AppointmentState
# Attendance is told of a session that was due to take place, or took place.
RECORDABLE = frozenset({S.CONFIRMED, S.CHECKED_IN, S.DONE, S.DEGRADED})
TOOK_PLACE = frozenset({S.CHECKED_IN, S.DONE, S.DEGRADED})
NOT_STARTED = "Les présences ne peuvent être notées qu'après l'heure de début de la séance."
PATIENT_RECEIVED = "Le patient a été accueilli : il ne peut pas être noté absent."
SESSION_HELD = "La séance a eu lieu : le professionnel qui l'a réalisée ne peut pas être noté absent."
NOBODY_ACCOMPANIES = "Personne n'accompagne cette séance : ne répondez pas pour l'accompagnant."
SAY_ACCOMPANYING = "Indiquez si le professionnel accompagnant était présent."
ACCOMPANYING_FEE_DECLARED = (
    "La rémunération d'accompagnement de cette séance est déjà déclarée ou payée : la coordination doit la corriger."
)
ACCOMPANYING_ABSENT_REASON = "Accompagnant·e absent·e à la séance (présences)"
# Still to be booked again or held: a postponed session, or one whose accompanying professional was absent and
# which has not taken place (yet).
OPEN_FOR_RESCHEDULING = frozenset({S.CONFIRMED, S.CHECKED_IN})
NOT_A_REBOOKING = frozenset({S.CANCELLED, S.DECLINED})
PERFORMER_ABSENT = "Professionnel absent : séance reportée"
ACCOMPANYING_ABSENT = "Accompagnant·e absent·e"


def attendance_of(session: Session, appointment: Appointment) -> Attendance | None:
    return session.scalar(select(Attendance).where(Attendance.appointment_id == appointment.id))


def attendances_by_appointment(session: Session, appointment_ids: list[int]) -> dict[int, Attendance | None]:
    """The attendance of each of a list's sessions (None when not recorded), in one query."""
    found = session.scalars(select(Attendance).where(Attendance.appointment_id.in_(appointment_ids)))
    return dict.fromkeys(appointment_ids) | {row.appointment_id: row for row in found}


def record(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    *,
    patient: bool,
    accompanying: bool | None,
    performer: bool,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Attendance:
    """Record who was there, after the session's start, and apply each absence's consequence (see the module's
    docstring): the no-show, the accompaniment fee withheld or cancelled, the session postponed and everyone told.
    `accompanying` is None exactly when nobody accompanies the session. Recorded again while the session is
    recordable, it replaces the previous answers; a postponed or no-show session is final."""
    now = now or utcnow()
    appointments.lock(session, appointment)
    if appointment.state not in RECORDABLE:
        raise InvalidTransition(
            f"Action impossible : le rendez-vous est « {APPOINTMENT_STATE_LABELS[appointment.state]} ».",
            current_state=appointment.state.value,
            action="attendance",
        )
    if now < appointment.starts_at:
        raise RuleViolation(NOT_STARTED)
    _check_answers(appointment, patient=patient, accompanying=accompanying, performer=performer)
    row = attendance_of(session, appointment) or Attendance(cpts_id=appointment.cpts_id, appointment_id=appointment.id)
    was_accompanying_absent = row.is_accompanying_present is False
    row.is_patient_present, row.is_accompanying_present, row.is_performer_present = patient, accompanying, performer
    row.note = (note or "").strip() or None  # its length is the schemas' (hub.schemas.attendance)
    row.recorded_by_user_id, row.recorded_at = actor.id, now
    session.add(row)
    session.flush()  # the fees read the row below (workflows.fees.accompanying_absent)
    # The note may speak of the patient's health: it stays on the row, never in the audit.
    details = {"patient": patient, "accompanying": accompanying, "performer": performer}
    audit.record(
        session,
        actor=actor,
        action="appointment.attendance",
        target=appointment,
        cpts_id=appointment.cpts_id,
        details=details,
    )
    if not performer:
        _postpone(session, actor, appointment)
        _postpone_the_group_session(session, actor, appointment)
    elif not patient:
        appointments.record_no_show(session, actor, appointment, now=now)
    if accompanying is False and appointment.state is S.DONE:
        _cancel_accompaniment_fee(session, appointment)
    elif accompanying and was_accompanying_absent and appointment.state is S.DONE:
        _restore_accompaniment_fee(session, appointment)
    return row


def _check_answers(appointment: Appointment, *, patient: bool, accompanying: bool | None, performer: bool) -> None:
    errors = {}
    if appointment.accompanying_id is None and accompanying is not None:
        errors["accompanying"] = NOBODY_ACCOMPANIES
    if appointment.accompanying_id is not None and accompanying is None:
        errors["accompanying"] = SAY_ACCOMPANYING
    if not performer and appointment.state in (S.DONE, S.DEGRADED):
        errors["performer"] = SESSION_HELD
    elif performer and not patient and appointment.state in TOOK_PLACE:
        errors["patient"] = PATIENT_RECEIVED
    if errors:
        raise ValidationFailed(errors)


def _postpone_the_group_session(session: Session, actor: Actor, appointment: Appointment) -> None:
    """The performer of a group session is absent for all its participants: each other participant's appointment
    still to take place is postponed too (told, « À reprogrammer »), without an attendance row of its own — nobody
    said whether that patient came."""
    if appointment.slot_id is None or appointment.program_id is None:
        return
    program = session.get_one(SessionProgram, appointment.program_id)
    if not program.is_group:
        return
    others = session.scalars(
        select(Appointment)
        .where(
            Appointment.slot_id == appointment.slot_id,
            Appointment.id != appointment.id,
            Appointment.state.in_(OPEN_FOR_RESCHEDULING),
        )
        .order_by(Appointment.id)
    ).all()
    for other in others:
        appointments.lock(session, other)
        if other.state in OPEN_FOR_RESCHEDULING:
            _postpone(session, actor, other)


def _postpone(session: Session, actor: Actor, appointment: Appointment) -> None:
    appointment.state = appointments.MACHINE.target("postpone", appointment.state)
    appointment.sequence += 1
    audit.record(session, actor=actor, action="appointment.postpone", target=appointment, cpts_id=appointment.cpts_id)
    sas.status_changed(session, appointment)  # the SAS hears « cancelled »: this booking will not take place
    # A session booked for a referral: the referral is to schedule again, from its page (« Adressages »).
    scheduled = session.scalar(
        select(Referral).where(Referral.appointment_id == appointment.id, Referral.state == ReferralState.SCHEDULED)
    )
    if scheduled is not None:
        referrals.reopen(session, actor, scheduled)
    if appointment.accompanying is not None:
        appointments._notify_professional(
            session,
            appointment.accompanying,
            appointment,
            kind="appointment_postponed",
            key=f"postpone:{appointment.id}:{appointment.accompanying_id}",
        )
    appointments._notify_patient(
        session, appointment, kind="appointment_postponed", key=f"postpone:{appointment.id}:patient"
    )


def _cancel_accompaniment_fee(session: Session, appointment: Appointment) -> None:
    entries = session.scalars(
        select(FeeEntry).where(
            FeeEntry.appointment_id == appointment.id,
            FeeEntry.professional_id == appointment.accompanying_id,
            FeeEntry.status != FeeStatus.CANCELLED,
        )
    ).all()
    if any(entry.status is not FeeStatus.ACCRUED for entry in entries):
        raise RuleViolation(ACCOMPANYING_FEE_DECLARED)
    for entry in entries:
        entry.status, entry.cancel_reason = FeeStatus.CANCELLED, ACCOMPANYING_ABSENT_REASON


def _restore_accompaniment_fee(session: Session, appointment: Appointment) -> None:
    """A correction: she was there after all. The fee cancelled for her absence is owed again, and the one never
    accrued (she was recorded absent before the session was done) is accrued now."""
    cancelled = session.scalars(
        select(FeeEntry).where(
            FeeEntry.appointment_id == appointment.id,
            FeeEntry.professional_id == appointment.accompanying_id,
            FeeEntry.status == FeeStatus.CANCELLED,
            FeeEntry.cancel_reason == ACCOMPANYING_ABSENT_REASON,
        )
    ).all()
    for entry in cancelled:
        entry.status, entry.cancel_reason = FeeStatus.ACCRUED, None
    session.flush()  # the accrual below reads the attendance row and the entries as they are now
    fees.accrue_appointment(session, appointment, zone=appointments.appointment_zone(session, appointment))


# --- the coordination's queue « À reprogrammer » --------------------------------------------------------------


@dataclass(frozen=True)
class ToReschedule:
    appointment: Appointment
    why: str  # PERFORMER_ABSENT or ACCOMPANYING_ABSENT
    next_slot: Slot | None  # the program's next open slot, for the one-click booking
    referral_id: int | None = None  # the patient's referral back « à programmer »: scheduled again from its page


# Made once: an alias made per call costs the desk more than its statements (SQLAlchemy adapts its columns anew).
_LATER = aliased(Appointment, name="later_session")


def _to_reschedule(cpts_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    later = _LATER
    rebooked = exists().where(
        later.patient_id == Appointment.patient_id,
        later.program_id == Appointment.program_id,
        later.starts_at > Appointment.starts_at,
        later.state.not_in(NOT_A_REBOOKING),
        # Booked after the absence was recorded: a patient booked into a series already has later sessions.
        later.created_at > func.coalesce(Attendance.recorded_at, Appointment.updated_at),
    )
    return and_(
        Appointment.cpts_id == cpts_id,
        or_(
            Appointment.state == S.POSTPONED,
            and_(Attendance.is_accompanying_present.is_(False), Appointment.state.in_(OPEN_FOR_RESCHEDULING)),
        ),
        ~rebooked,
    )


def count_to_reschedule(session: Session, cpts_id: int) -> int:
    return session.scalar(count_to_reschedule_query(cpts_id)) or 0


def count_to_reschedule_query(cpts_id: int | ColumnElement[int]):
    """count_to_reschedule's statement, for a desk that reads it with its other counts."""
    return (
        select(func.count(Appointment.id))
        .outerjoin(Attendance, Attendance.appointment_id == Appointment.id)
        .where(_to_reschedule(cpts_id))
    )


def to_reschedule(
    session: Session, cpts_id: int, *, now: dt.datetime, limit: int = 200, with_booking: bool = True
) -> list[ToReschedule]:
    """Sessions of the CPTS to book again: postponed for the performer's absence, or whose accompanying
    professional was absent while they have not taken place; each until the patient has a later session in the
    same program (booked again), oldest first, with how to book it again (the program's next free slot, or the
    referral back « à programmer ») unless `with_booking` is false: the desk, whose query count stays fixed,
    links to the full list instead."""
    rows = session.execute(_to_reschedule_statement(limit), {"cpts_id": cpts_id}).all()
    program_ids = {appointment.program_id for appointment, _ in rows} if with_booking else set()
    next_slots = _next_open_slots(session, program_ids, now=now)
    to_schedule = _referrals_to_schedule(session, [appointment for appointment, _ in rows]) if with_booking else {}
    return [
        ToReschedule(
            appointment,
            PERFORMER_ABSENT if not performer_present else ACCOMPANYING_ABSENT,
            next_slots.get(appointment.program_id) if appointment.program_id is not None else None,
            to_schedule.get((appointment.patient_id, "program", appointment.program_id))
            or to_schedule.get((appointment.patient_id, "specialist", appointment.performer_id)),
        )
        for appointment, performer_present in rows
    ]


@functools.cache
def _to_reschedule_statement(limit: int) -> Select:
    """to_reschedule's statement, built once with the CPTS as a parameter: the coordinator's desk reads it on every
    view, and building it cost more CPU than running it."""
    return (
        select(Appointment, Attendance.is_performer_present)
        .outerjoin(Attendance, Attendance.appointment_id == Appointment.id)
        .where(_to_reschedule(bindparam("cpts_id", type_=Integer)))
        .options(joinedload(Appointment.patient), joinedload(Appointment.performer))
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(limit)
    )


def _referrals_to_schedule(session: Session, appointments_: list[Appointment]) -> dict[tuple, int]:
    """The accepted referrals of these sessions' patients (a postponed session's referral is back « à programmer »)
    by (patient, "program", program) and (patient, "specialist", specialist), in one query."""
    if not appointments_:
        return {}
    found = session.execute(
        select(Referral.patient_id, Referral.target_program_id, Referral.target_specialist_id, Referral.id)
        .where(
            Referral.patient_id.in_({a.patient_id for a in appointments_}),
            Referral.state == ReferralState.ACCEPTED,
        )
        .order_by(Referral.id)
    )
    keys: dict[tuple, int] = {}
    for patient_id, program_id, specialist_id, referral_id in found:
        keys[(patient_id, "program", program_id)] = referral_id
        keys[(patient_id, "specialist", specialist_id)] = referral_id
    return keys


def _next_open_slots(session: Session, program_ids: set[int | None], *, now: dt.datetime) -> dict[int, Slot]:
    """The next free slot of each program: one query per program, and a list holds few programs."""
    slots: dict[int, Slot] = {}
    for program_id in sorted(p for p in program_ids if p is not None):
        slot = session.scalar(
            select(Slot)
            .join(SessionProgram, SessionProgram.id == Slot.program_id)
            .where(
                Slot.program_id == program_id,
                Slot.state == SlotState.OPEN,
                Slot.starts_at > now,
                has_seat_left(),  # a group session with seats left takes the patient again
            )
            .order_by(Slot.starts_at)
            .limit(1)
        )
        if slot is not None:
            slots[program_id] = slot
    return slots
