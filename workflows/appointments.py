"""The appointment's life: booking into a slot, the IDEL's confirmation, check-in, completion, and the
ways out (decline, cancel, no-show, degraded). One function per verb: it checks the transition and its
guards, changes the rows, writes the audit line and queues the notifications."""

import datetime as dt
import enum
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Table,
    Update,
    bindparam,
    case,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

from connectors import outbox
from hub import audit, row_locks
from hub.auth.policies import can_edit_patient
from hub.db import (
    NEW_ID,
    IdText,
    insert_together,
    rows_changed,
    update_by_id_if_unchanged,
    update_row,
    utcnow,
    with_defaults,
    with_new_id,
)
from hub.errors import Conflict, InvalidTransition, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    APPOINTMENT_STATE_LABELS,
    Actor,
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentKind,
    AppointmentState,
    AuditEvent,
    ConsentKind,
    ConsentMethod,
    FreedSlotReason,
    Modality,
    OutboxMessage,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    ProgramKind,
    SessionProgram,
    Slot,
    SlotState,
    User,
    VisitOffer,
    VisitOfferState,
)
from hub.models.patient import age_on
from hub.services import directory, fhir, resources
from hub.services.care import care_team_member, care_team_query
from hub.services.identity import (
    add_consent,
    consent_withdrawn_in,
    consents_of,
    has_valid_consent,
    valid_consent_in,
)
from scheduling.bookings import Hold, allocate, allocate_shared, insert_holding, release, release_shared
from scheduling.slots import HOLDING_STATES, slot_with_program
from workflows import eligibility, fees, freed_slots, idel_ranking, rituals, sas, video
from workflows.machine import Machine

S = AppointmentState
MACHINE = Machine(
    "le rendez-vous",
    {
        "confirm": (frozenset({S.PROPOSED}), S.CONFIRMED),
        "decline": (frozenset({S.PROPOSED}), S.DECLINED),
        "reassign": (frozenset({S.PROPOSED, S.DECLINED}), S.PROPOSED),
        "check_in": (frozenset({S.CONFIRMED}), S.CHECKED_IN),
        "complete": (frozenset({S.CHECKED_IN}), S.DONE),
        "degrade": (frozenset({S.CHECKED_IN}), S.DEGRADED),
        "cancel": (frozenset({S.PROPOSED, S.CONFIRMED, S.DECLINED}), S.CANCELLED),
        "no_show": (frozenset({S.CONFIRMED}), S.NO_SHOW),
        # The performer was absent (workflows.attendance): the session did not take place and is booked again.
        "postpone": (frozenset({S.CONFIRMED, S.CHECKED_IN}), S.POSTPONED),
    },
    APPOINTMENT_STATE_LABELS,
)
LATE_CANCELLATION = dt.timedelta(hours=24)
REMOTE_KINDS = frozenset({AppointmentKind.ASSISTED_TELECONSULTATION, AppointmentKind.TELESOIN})
HOME_PLACES = frozenset({PlaceKind.HOME, PlaceKind.NURSING_VISIT})
CHECKLIST_ITEMS = {
    "camera": "caméra testée",
    "sound": "son testé",
    "light": "éclairage suffisant",
    "privacy": "confidentialité assurée",
}
OFFICE_HOURS = (dt.time(8), dt.time(19))
SECOND_ROUND_SIZE = 5
SESSION_FULL = "Séance complète"


# --- booking ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelesoinAct:
    """What a télésoin session is: the act (for the rules), the coefficient of the act it stands for (for the
    price; the act's usual one when not stated), the last in-person dressing (for remote dressing follow-up),
    the last in-person care as the booker attests it (when the hub holds none), and a coordinator's reason to
    go over the 20 % share."""

    act: str | None = None
    coefficient: Decimal | None = None
    last_in_person_dressing_on: dt.date | None = None
    last_in_person_contact_on: dt.date | None = None
    override_reason: str | None = None
    overridden_share: Decimal | None = None  # set by the check when the override was used

    @classmethod
    def from_booking(cls, data: dict) -> "TelesoinAct":
        """The act as the booking forms and the API name its fields."""
        return cls(
            act=data.get("telesoin_act"),
            coefficient=data.get("act_coefficient"),
            last_in_person_dressing_on=data.get("last_in_person_dressing_on"),
            last_in_person_contact_on=data.get("last_in_person_contact_on"),
            override_reason=data.get("remote_share_override_reason"),
        )

    def given_fields(self) -> list[str]:
        """The booking fields said (as the forms and the API name them): only a télésoin session takes them."""
        given = {
            "telesoin_act": self.act,
            "act_coefficient": self.coefficient,
            "last_in_person_dressing_on": self.last_in_person_dressing_on,
            "last_in_person_contact_on": self.last_in_person_contact_on,
            "remote_share_override_reason": self.override_reason,
        }
        return [field for field, value in given.items() if value is not None]


def book(
    session: Session,
    actor: Actor,
    *,
    slot: Slot,
    patient: Patient,
    place_kind: PlaceKind,
    accompanying: Professional | None = None,
    telesoin: TelesoinAct | None = None,
    now: dt.datetime | None = None,
    inputs: "BookingInputs | None" = None,
) -> Appointment:
    """Book the patient into a slot, holding the performer, the patient, the accompanying IDEL (the
    patient's own by default), the room and the kit, each over its own time range, all or nothing.

    The visit is proposed to the IDEL, who confirms it; a proposed visit holds its allocations. A
    télésoin session states its act; the act rules and the 20 % remote-care share are checked here.
    A remote session needs the patient's recorded eligibility (HAS checklist) for its modality. `inputs`: what
    booking_inputs read for this slot and patient (the rules' facts are then not read again).
    """
    now = now or utcnow()
    program = slot.program
    _check_bookable(session, slot, patient, now=now)
    if program.is_group:
        take_seat(session, slot)
    if place_kind is PlaceKind.PHARMACY and not program.is_at_pharmacy:
        raise ValidationFailed({"place_kind": OFFICINE_ONLY_ITS_PROGRAM})
    kind = program.appointment_kind
    wants_own_idel = kind is AppointmentKind.ASSISTED_TELECONSULTATION and accompanying is None
    if inputs is not None and inputs.slot is slot and inputs.patient is patient:
        facts = _facts_of(inputs, program)
    else:
        facts = _booking_facts(session, program, patient, own_idel=wants_own_idel and not program.is_at_pharmacy)
    if kind in REMOTE_KINDS:
        eligibility.require_verdict(patient, Modality(kind.value), **facts.verdict)
    if kind is not AppointmentKind.TELESOIN and telesoin is not None:
        if given := telesoin.given_fields():
            raise ValidationFailed(dict.fromkeys(given, "Seule une séance de télésoin porte un acte de télésoin."))
        telesoin = None
    if kind is AppointmentKind.ASSISTED_TELECONSULTATION:
        accompanying = choose_accompanying(
            session, program, patient, place_kind, accompanying, at=slot.starts_at, own=facts.own_idel
        )
    elif accompanying is not None:
        raise ValidationFailed({"accompanying_id": "Une séance de télésoin n'a pas de professionnel accompagnant."})
    else:
        telesoin = _check_telesoin(session, actor, program, slot, patient, telesoin or TelesoinAct(), now=now)
    before = dt.timedelta(minutes=program.accompaniment_before_minutes)
    after = dt.timedelta(minutes=program.accompaniment_after_minutes)
    assisted = kind is AppointmentKind.ASSISTED_TELECONSULTATION
    row: dict[str, Any] = {
        "cpts_id": patient.cpts_id,
        "kind": kind,
        "patient_id": patient.id,
        "slot_id": slot.id,
        "program_id": program.id,
        "performer_id": program.performer_id,
        "accompanying_id": accompanying.id if accompanying else None,
        "place_kind": place_kind,
        "starts_at": slot.starts_at,
        "ends_at": slot.ends_at,
        "accompaniment_starts_at": slot.starts_at - before if assisted else None,
        "accompaniment_ends_at": slot.ends_at + after if assisted else None,
        "room_id": program.room_id,
        "kit_id": program.kit_id,
        "created_by_user_id": actor.id,
    }
    if telesoin is not None:
        row |= {
            "telesoin_act": telesoin.act,
            "act_coefficient": telesoin.coefficient,
            "last_in_person_dressing_on": telesoin.last_in_person_dressing_on,
            "last_in_person_contact_on": telesoin.last_in_person_contact_on,
            "remote_share_override_reason": telesoin.override_reason,
        }
    row = with_defaults(_APPOINTMENTS, row)  # the sequence, which the e-mail's key holds
    # The offer to the IDEL, her e-mail and the audit row, which nobody reads back; NEW_ID: the appointment's id.
    rows = _first_offer(program, accompanying, cpts_id=patient.cpts_id, sequence=row["sequence"], now=now)
    event = audit.event_row(
        actor=actor, action="appointment.book", target=("appointments", NEW_ID), cpts_id=patient.cpts_id
    )
    rows.append((_AUDIT_EVENTS, event))
    # PostgreSQL: the appointment, its holds and those rows in one statement (the holds' exclusion constraint is the
    # check, the rows' texts built there around the new id). Else, or for a group session's seat: one INSERT …
    # RETURNING of the persistent row, then the holds (SQLite checks them first, inside its serialised
    # transaction), then the rows.
    together = not program.is_group and session.get_bind().dialect.name == "postgresql"
    if together:
        appointment = _insert_holding(session, row, zone=program.zone, dependents=rows)
    else:
        appointment = session.scalars(_APPOINTMENT_INSERT, [row]).one()
    # What the caller already holds, as the constructor would have linked it: no lazy load to find them again.
    for name, value in (("patient", patient), ("slot", slot), ("accompanying", accompanying)):
        set_committed_value(appointment, name, value)
    if program.is_group:
        _hold_group_session(session, slot, appointment, zone=program.zone)
    elif not together:
        allocate(session, appointment, holds_for(session, appointment), zone=program.zone)
    video.give_room(session, appointment)
    if not together:
        insert_together(session, with_new_id(rows, appointment.id))
    freed_slots.patient_booked(session, actor, appointment, now=now, waiting=facts.waiting)
    if telesoin is not None and telesoin.last_in_person_contact_on is not None:
        # The booker's word stands for the 12-month rule: who attested which date is kept.
        audit.record(
            session,
            actor=actor,
            action="appointment.in_person_attested",
            target=appointment,
            cpts_id=appointment.cpts_id,
            details={"last_in_person_contact_on": telesoin.last_in_person_contact_on.isoformat()},
        )
    if telesoin is not None and telesoin.overridden_share is not None:
        # The reason stays on the appointment: it may speak of the patient's health, which the audit never holds.
        details = {"share": str(telesoin.overridden_share), "professional_id": appointment.performer_id}
        audit.record(
            session,
            actor=actor,
            action="remote_share.override",
            target=appointment,
            cpts_id=appointment.cpts_id,
            details=details,
        )
    return appointment


@dataclass(frozen=True)
class BookingInputs:
    """What a booking request reads before book(): the slot (None if it does not exist) with its program, room and
    kit, the patient, and the facts book()'s rules need, which book() then does not read again."""

    slot: Slot | None
    patient: Patient
    row: Row  # the facts for either remote modality (_facts_of picks the program's)


def booking_inputs(session: Session, *, slot_id: int, patient_id: int) -> BookingInputs | None:
    """The slot with its program, room and kit (as slots.slot_with_program), the patient and the rules' facts for
    the slot's program (eligibility, own IDEL, waiting entry: _booking_facts) in one SELECT rather than three round
    trips; None when the patient does not exist. Who may book them is the caller's check."""
    row = session.execute(_INPUTS, {"slot_id": slot_id, "patient_id": patient_id}).one_or_none()
    return None if row is None else BookingInputs(row.Slot, row.Patient, row)


def requested_booking(
    session: Session, actor: Actor, *, slot_id: int, patient_id: int, slot_first: bool = False
) -> BookingInputs:
    """The one read of a booking request (booking_inputs) and who may book: the patient the actor may edit
    (patient_for(write=True)'s rule, and its audited 404), the slot of the actor's CPTS (a 404). `slot_first`: the
    slot's 404 before the patient's, as on the slot's own page; the API's body names both, the patient's comes first."""
    inputs = booking_inputs(session, slot_id=slot_id, patient_id=patient_id)
    if slot_first:
        # No patient, no row: the slot is read apart, on this refusal only.
        _require_slot(actor, inputs.slot if inputs is not None else slot_with_program(session, slot_id))
    if inputs is None or not can_edit_patient(session, actor, inputs.patient):
        raise NotFound("Patient introuvable.", audit_action="appointment.book", audit_target=("patients", patient_id))
    _require_slot(actor, inputs.slot)
    return inputs


def _require_slot(actor: Actor, slot: Slot | None) -> None:
    if slot is None or slot.program.cpts_id != actor.cpts_id:
        raise NotFound("Créneau introuvable.")


def book_requested(
    session: Session,
    actor: Actor,
    inputs: BookingInputs,
    *,
    place_kind: PlaceKind,
    accompanying_id: int | None,
    telesoin: TelesoinAct | None,
) -> Appointment:
    """book() for a request that requested_booking read and checked: the accompanying professional it names (a 422
    when unknown), then every rule of book() on that read."""
    accompanying = None
    if accompanying_id is not None:
        accompanying = session.get(Professional, accompanying_id)
        if accompanying is None:
            raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
    assert inputs.slot is not None  # requested_booking refused a missing slot
    return book(
        session,
        actor,
        slot=inputs.slot,
        patient=inputs.patient,
        place_kind=place_kind,
        accompanying=accompanying,
        telesoin=telesoin,
        inputs=inputs,
    )


def _inputs_query() -> Select:
    # The patient's row outer-joined to the slot's (a cross join of two ids), so that a missing slot still gives
    # the patient; the facts as columns correlated to both, for either remote modality (the program's kind is not
    # known before), the own IDEL as an entity outer-joined on her id. Built once, with bound parameters.
    program = joinedload(Slot.program)
    own_idel = aliased(Professional, name="own_idel")
    facts = {"waiting": freed_slots.is_waiting(Patient.id, Slot.program_id)}
    for modality in (Modality.ASSISTED_TELECONSULTATION, Modality.TELESOIN):
        verdict = eligibility.verdict_columns(Patient.id, modality)
        facts |= {f"{modality.value}_{name}": verdict[name] for name in ("outcome", "alternative")}
    own_idel_id = care_team_query(Patient.id, Profession.NURSE, Professional.id).scalar_subquery()
    return (
        select(Patient, Slot, own_idel, *(column.label(name) for name, column in facts.items()))
        .select_from(Patient)
        .outerjoin(Slot, Slot.id == bindparam("slot_id", type_=Integer))
        .outerjoin(own_idel, own_idel.id == own_idel_id)
        .where(Patient.id == bindparam("patient_id", type_=Integer))
        .options(program.joinedload(SessionProgram.room), program.joinedload(SessionProgram.kit))
    )


_INPUTS = _inputs_query()


def _facts_of(inputs: BookingInputs, program: SessionProgram) -> "BookingFacts":
    """_booking_facts' answer from the facts booking_inputs read: the verdict of the program's modality."""
    row = inputs.row._mapping
    assisted, telesoin = Modality.ASSISTED_TELECONSULTATION.value, Modality.TELESOIN.value
    if program.appointment_kind is AppointmentKind.ASSISTED_TELECONSULTATION:
        verdict = {
            "outcome": row[f"{assisted}_outcome"],
            "alternative": row[f"{assisted}_alternative"],
            "steered": row[f"{telesoin}_outcome"],  # as verdict_columns' `steered`
        }
    else:
        verdict = {"outcome": row[f"{telesoin}_outcome"], "alternative": row[f"{telesoin}_alternative"]}
    return BookingFacts(verdict, inputs.row.own_idel, bool(row["waiting"]))


class Unread(enum.Enum):
    """choose_accompanying's default: the patient's own IDEL was not read beforehand, it reads it."""

    UNREAD = "unread"


@dataclass(frozen=True)
class BookingFacts:
    """What book()'s rules read beyond the slot, its program and the patient, in one query (_booking_facts)."""

    verdict: dict  # require_verdict's outcome, alternative (and steered) for a remote session
    own_idel: Professional | Literal[Unread.UNREAD] | None
    # The patient waits for the program: their entry is booked with the appointment. Read before the INSERT: an
    # entry added by another transaction between this read and the booking's commit (the patient put on the list
    # while being booked into the same program) stays « en attente » until the coordinator closes it: a rare race,
    # accepted to spare every booking an UPDATE.
    waiting: bool


def _insert_holding(session: Session, row: dict, *, zone: str, dependents: list[tuple[Table, dict]]) -> Appointment:
    """The appointment, its holds and the dependents in one statement (scheduling.bookings.insert_holding), made a
    persistent entity from the row it returns without the ORM's bulk-insert path: the entity, built transient from the
    booking's row, gives the holds, then takes every column inserted and the identity of a row just loaded.

    Its attributes are written as a load writes them (the instance's dict), not through the constructor and
    setattr: their events and history, which make_transient_to_detached then discards, cost up to a tenth of the
    booking's CPU (issue 17, P7). Nothing listens to an Appointment's attribute events (hub.models)."""
    appointment = _APPOINTMENT_CLASS.new_instance()
    values = instance_dict(appointment)
    values.update(row)
    holds = holds_for(session, appointment)
    inserted = insert_holding(session, _APPOINTMENTS, row, holds, zone=zone, dependents=dependents)
    values.update({key: inserted[name] for key, name in _APPOINTMENT_COLUMNS})
    make_transient_to_detached(appointment)  # no change left to flush: as loaded
    session.add(appointment)
    return appointment


_APPOINTMENTS = cast(Table, Appointment.__table__)
_APPOINTMENT_CLASS = inspect(Appointment).class_manager
_APPOINTMENT_COLUMNS = [
    (prop.key, prop.columns[0].name)
    for prop in inspect(Appointment).column_attrs
    if getattr(prop.columns[0], "table", None) is _APPOINTMENTS
]
_APPOINTMENT_INSERT = insert(Appointment).returning(Appointment)  # built once: a booking only binds its row


def _booking_facts(session: Session, program: SessionProgram, patient: Patient, *, own_idel: bool) -> BookingFacts:
    """The patient's eligibility for the program's modality (a remote session), own IDEL (when the booking does not
    name who accompanies) and waiting entry for the program, in one SELECT rather than three round trips."""
    kind = program.appointment_kind
    modality = Modality(kind.value) if kind in REMOTE_KINDS else None
    query = _facts_query(modality, own_idel=own_idel)
    row = session.execute(query, {"patient_id": patient.id, "program_id": program.id}).one()._mapping
    verdict = {name: row[name] for name in ("outcome", "alternative", "steered") if name in row}
    return BookingFacts(verdict, row[Professional] if own_idel else Unread.UNREAD, bool(row["waiting"]))


@functools.cache
def _facts_query(modality: Modality | None, *, own_idel: bool) -> Select:
    """_booking_facts' query for one shape of booking, built once per process with bound parameters (patient_id,
    program_id): building it costs about as much Python as its round trip. The IDEL is selected as an entity,
    outer-joined to the one row of facts, so that a patient without one reads None."""
    patient_id, program_id = bindparam("patient_id", type_=Integer), bindparam("program_id", type_=Integer)
    columns = {"waiting": freed_slots.is_waiting(patient_id, program_id)}
    if modality is not None:
        columns |= eligibility.verdict_columns(patient_id, modality)
    if own_idel:
        columns["own_idel_id"] = care_team_query(patient_id, Profession.NURSE, Professional.id).scalar_subquery()
    facts = select(*(column.label(name) for name, column in columns.items())).subquery()
    # The IDEL's id only joins: selected too, PostgreSQL would run its subquery twice.
    wanted = [column for column in facts.c if column.name != "own_idel_id"]
    if not own_idel:
        return select(*wanted)
    return select(*wanted, Professional).outerjoin(Professional, Professional.id == facts.c.own_idel_id)


def _check_telesoin(session, actor, program, slot, patient, telesoin: TelesoinAct, *, now) -> TelesoinAct:
    performer = program.performer
    act_on = fees.local_day(slot.starts_at, program.zone)
    fees.check_telesoin_act(
        session,
        performer=performer,
        patient_id=patient.id,
        act=telesoin.act,
        act_on=act_on,
        today=fees.local_day(now, program.zone),
        last_in_person_dressing_on=telesoin.last_in_person_dressing_on,
        last_in_person_contact_on=telesoin.last_in_person_contact_on,
        zone=program.zone,
    )
    coefficient = telesoin.coefficient or fees.usual_coefficient(performer.profession, telesoin.act)
    telesoin = replace(telesoin, coefficient=coefficient)
    code = fees.REMOTE_CARE_CODES.get(performer.profession)
    if code is not None:
        price = fees.tariff_on(session, code, act_on).amount * (coefficient or 1)
        share = fees.check_remote_share(
            session,
            actor,
            performer=performer,
            act_amount=price,
            act_on=act_on,
            override_reason=telesoin.override_reason,
            zone=program.zone,
        )
        if share.overridden:
            telesoin = replace(telesoin, overridden_share=share.share)
        else:
            telesoin = replace(telesoin, override_reason=None)  # kept only when it was used
    return telesoin


def booking_warnings(session: Session, appointment: Appointment) -> list[str]:
    """What the booker should know once a session is booked: a télésoin that takes its performer's share to the
    15 % warning threshold."""
    if appointment.kind is not AppointmentKind.TELESOIN:
        return []
    zone = appointment_zone(session, appointment)
    performer = appointment.performer
    share = fees.planned_remote_share(session, performer, act_on=fees.local_day(appointment.starts_at, zone), zone=zone)
    warning = fees.share_warning(share, performer)
    return [warning] if warning else []


def _check_bookable(session: Session, slot: Slot, patient: Patient, *, now: dt.datetime) -> None:
    program = slot.program
    if slot.state is not SlotState.OPEN or not program.is_active:
        raise Conflict("Ce créneau n'est plus ouvert à la réservation.")
    if slot.starts_at <= now:
        raise RuleViolation("Ce créneau est déjà passé.")
    if patient.cpts_id != program.cpts_id:
        raise NotFound("Patient introuvable.")
    resources.require_bookable(program)
    # A missing consent does not stop the booking: the confirmation asks for it (see confirm()).


def holds_for(session: Session, appointment: Appointment) -> list[Hold]:
    """What the appointment holds: the performer for the consultation, the patient, the IDEL, the room
    and the kit for the whole accompaniment window."""
    return session_holds(session, appointment) + participant_holds(session, appointment)


def session_holds(session: Session, appointment: Appointment) -> list[Hold]:
    """What the session itself takes: the performer for the consultation, the room and the kit for the
    accompaniment window. A group session holds them once, for its slot. Names are read only on a conflict."""
    window = appointment.accompaniment_window
    holds = [
        Hold(AllocationResource.PROFESSIONAL, appointment.performer_id, appointment.starts_at, appointment.ends_at)
    ]
    if appointment.room_id is not None:
        holds.append(Hold(AllocationResource.ROOM, appointment.room_id, *window))
    if appointment.kit_id is not None:
        holds.append(Hold(AllocationResource.KIT, appointment.kit_id, *window))
    return holds


def participant_holds(session: Session, appointment: Appointment) -> list[Hold]:
    """What each participant takes: the patient and their IDEL, over the accompaniment window."""
    window = appointment.accompaniment_window
    holds = [Hold(AllocationResource.PATIENT, appointment.patient_id, *window)]
    if appointment.accompanying_id is not None:
        holds.append(Hold(AllocationResource.PROFESSIONAL, appointment.accompanying_id, *window))
    return holds


# --- group sessions ---------------------------------------------------------------------------------------


class SessionFull(Conflict):
    title = SESSION_FULL
    type_slug = "session-full"


def lock_slot(session: Session, slot: Slot) -> None:
    """Take the slot's row lock: bookings and cancellations of one group session run one after the other, so
    that its participants are counted and its shared holds taken or given back by one of them at a time.
    SQLite's BEGIN IMMEDIATE transaction already serialises writers."""
    session.execute(select(Slot.id).where(Slot.id == slot.id).with_for_update())


def participants_count(session: Session, slot_ids: list[int]) -> dict[int, int]:
    """How many participants hold each slot (one query)."""
    if not slot_ids:
        return {}
    rows = session.execute(
        select(Appointment.slot_id, func.count())
        .where(Appointment.slot_id.in_(slot_ids), Appointment.state.in_(HOLDING_STATES))
        .group_by(Appointment.slot_id)
    )
    return {slot_id: count for slot_id, count in rows if slot_id is not None}


def take_seat(session: Session, slot: Slot) -> None:
    """Refuse a booking into a full group session, under the slot's lock: of fifty simultaneous bookings into a
    session of six, six get a seat and the others « Séance complète »."""
    lock_slot(session, slot)
    taken = participants_count(session, [slot.id]).get(slot.id, 0)
    if taken >= slot.program.capacity:
        raise SessionFull(
            f"{SESSION_FULL} : {taken}/{slot.program.capacity} participants.",
            capacity=slot.program.capacity,
            participants=taken,
        )


def _hold_group_session(session: Session, slot: Slot, appointment: Appointment, *, zone: str) -> None:
    # The first participant takes the session's shared holds for the slot; each takes their own.
    if session.scalar(select(exists().where(Allocation.slot_id == slot.id))) is not True:
        allocate_shared(session, slot, session_holds(session, appointment), zone=zone)
    allocate(session, appointment, participant_holds(session, appointment), zone=zone)


def _leave_group_session(session: Session, appointment: Appointment) -> None:
    # Called once the appointment no longer holds its slot: the last participant gives the shared holds back.
    slot = appointment.slot
    if slot is None or not slot.program.is_group:
        return
    lock_slot(session, slot)
    session.flush()
    if participants_count(session, [slot.id]).get(slot.id, 0) == 0:
        release_shared(session, slot)


def own_idel(session: Session, patient: Patient) -> Professional | None:
    """The patient's own IDEL: the first nurse of the care team."""
    return care_team_member(session, patient, Profession.NURSE)


def default_place(program: SessionProgram) -> PlaceKind:
    """Where a session of the program takes place unless the booker says otherwise: the patient's home for
    télésoin, the officine for an officine's teleconsultation, a dedicated place for any other."""
    if program.kind is ProgramKind.TELESOIN:
        return PlaceKind.HOME
    return PlaceKind.PHARMACY if program.is_at_pharmacy else PlaceKind.DEDICATED_PLACE


OFFICINE_ONLY_ITS_PROGRAM = "Une séance en officine se réserve dans un programme de téléconsultation en officine."


def choose_accompanying(
    session: Session,
    program: SessionProgram,
    patient: Patient,
    place_kind: PlaceKind,
    chosen: Professional | None,
    *,
    at: dt.datetime | None = None,
    own: Professional | Literal[Unread.UNREAD] | None = Unread.UNREAD,
) -> Professional | None:
    """Who is with the patient: in an officine's program, a pharmacist of that officine (the first by name
    unless one is chosen), the session held at the officine; in any other, an IDEL (the patient's own unless
    one is chosen, and not on a weekday she said she does not work, `at` being the session's start; possibly
    nobody yet, the visit then waits for the coordination's choice), never at an officine. `own`: the patient's
    own IDEL (or None) when the caller read it already, as book() does with its other facts."""
    if program.is_at_pharmacy:
        if place_kind is not PlaceKind.PHARMACY:
            raise ValidationFailed({"place_kind": "Cette séance a lieu à l'officine : choisissez « Officine »."})
        pharmacists = directory.officine_pharmacists(session, _officine_id(program))
        if not pharmacists:
            raise RuleViolation("Aucun·e pharmacien·ne de l'officine n'accompagne de téléconsultation.")
        chosen = chosen or pharmacists[0]
    elif chosen is None:
        if own is Unread.UNREAD:
            own = own_idel(session, patient)
        local_day = at.astimezone(ZoneInfo(program.zone)).isoweekday() if at else None
        chosen = own if own is not None and (local_day is None or own.works_on(local_day)) else None
    if chosen is not None:
        _check_can_accompany(session, program, chosen, patient, place_kind)
    return chosen


def _officine_id(program: SessionProgram) -> int:
    assert program.organisation_id is not None  # an officine's program names it (workflows.programs)
    return program.organisation_id


def offer_delay(program: SessionProgram) -> int | None:
    """Minutes the first one asked has before the visit goes to the territory's other IDELs; None for an
    officine's session, which its own pharmacists accompany and nobody else."""
    return None if program.is_at_pharmacy else program.own_idel_delay_minutes


def _check_can_accompany(
    session: Session, program: SessionProgram, helper: Professional, patient: Patient, place_kind: PlaceKind
) -> None:
    if helper.cpts_id != patient.cpts_id or not helper.is_active:
        raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
    if program.is_at_pharmacy:
        if helper not in directory.officine_pharmacists(session, _officine_id(program)):
            raise ValidationFailed(
                {"accompanying_id": "En officine, un·e pharmacien·ne de l'officine accompagne la téléconsultation."}
            )
        return
    if helper.profession is not Profession.NURSE:
        raise ValidationFailed(
            {
                "accompanying_id": "L'accompagnement est assuré par un·e IDEL ; un·e pharmacien·ne accompagne "
                "les téléconsultations en officine."
            }
        )
    if place_kind in HOME_PLACES and not helper.serves(patient.commune_insee):
        raise RuleViolation(f"{helper.full_name} n'intervient pas à domicile dans la commune du patient.")


# --- the IDEL's answer ------------------------------------------------------------------------------------


def _offer(session, appointment, idel, *, round_: int, now: dt.datetime, delay_minutes: int | None) -> VisitOffer:
    row = _offer_row(session, appointment, idel, round_=round_, now=now, delay_minutes=delay_minutes)
    offer = session.scalars(insert(VisitOffer).returning(VisitOffer), [row]).one()
    _notify_professional(session, idel, appointment, kind="visit_offered", key=f"offer:{appointment.id}:{idel.id}")
    return offer


def _first_offer(
    program: SessionProgram, idel: Professional | None, *, cpts_id: int, sequence: int, now: dt.datetime
) -> list[tuple[Table, dict]]:
    """book()'s offer to the IDEL (none when nobody accompanies yet) and her e-mail, as rows inserted with the
    appointment (its id NEW_ID): no ORM object built, nobody reads them back."""
    if idel is None:
        return []
    delay_minutes = offer_delay(program)
    offer = _offer_fields(NEW_ID, idel, zone=program.zone, round_=1, now=now, delay_minutes=delay_minutes)
    key = "offer:" + IdText(after=f":{idel.id}:{sequence}")  # as _notify_professional keys it
    payload = {"appointment_id": NEW_ID}
    email = outbox.email_row(idel, kind="visit_offered", payload=payload, key=key, cpts_id=cpts_id)
    rows = [(_VISIT_OFFERS, offer)]
    return rows if email is None else [*rows, (_OUTBOX_MESSAGES, email)]


_VISIT_OFFERS = cast(Table, VisitOffer.__table__)
_OUTBOX_MESSAGES = cast(Table, OutboxMessage.__table__)
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)


def _offer_row(session, appointment, idel, *, round_: int, now: dt.datetime, delay_minutes: int | None) -> dict:
    zone = appointment_zone(session, appointment)
    return _offer_fields(appointment.id, idel, zone=zone, round_=round_, now=now, delay_minutes=delay_minutes)


def _offer_fields(appointment_id, idel, *, zone: str, round_: int, now: dt.datetime, delay_minutes: int | None) -> dict:
    expires = add_office_minutes(now, delay_minutes, zone) if delay_minutes else None
    return {
        "appointment_id": appointment_id,
        "professional_id": idel.id,
        "round": round_,
        "offered_at": now,
        "expires_at": expires,
    }


MISSING_CONSENT = "Le consentement du patient à la télésanté n'est pas enregistré : recueillez-le avant la séance."
WITHDRAWN_CONSENT = "Le patient a retiré son consentement au télésoin : proposez une alternative en présentiel."


def lacks_remote_consent(appointment: Appointment) -> bool:
    return appointment.kind in REMOTE_KINDS and not has_valid_consent(appointment.patient, ConsentKind.TELEHEALTH)


def require_remote_consent(appointment: Appointment) -> None:
    """No confirmation, check-in or completion (hence no fee) of a remote act without a telehealth consent in
    force (HAS): a consent withdrawn after the confirmation stops the session too."""
    require_consent_for(appointment.kind, consents_of(appointment.patient))


def require_consent_for(kind: AppointmentKind, consents: Iterable) -> None:
    """require_remote_consent's rule for an appointment of `kind` whose patient has `consents` (Consent rows, or
    plain rows with their kind and is_valid: identity.valid_consent_in)."""
    if kind in REMOTE_KINDS and valid_consent_in(consents, ConsentKind.TELEHEALTH) is None:
        withdrawn = consent_withdrawn_in(consents, ConsentKind.TELEHEALTH)
        raise RuleViolation(WITHDRAWN_CONSENT if withdrawn else MISSING_CONSENT)


# Still planned: the coordinator can cancel it or turn it into an in-person alternative.
PLANNED_STATES = (AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.DECLINED)


def remote_sessions_to_review(
    session: Session, patient: Patient, *, now: dt.datetime | None = None
) -> list[Appointment]:
    """The patient's future remote sessions still planned while no telehealth consent is in force (withdrawn,
    HAS: propose an alternative): what the coordinator must cancel or turn into an in-person visit."""
    if has_valid_consent(patient, ConsentKind.TELEHEALTH):
        return []
    return list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.patient_id == patient.id,
                Appointment.kind.in_(REMOTE_KINDS),
                Appointment.state.in_(PLANNED_STATES),
                Appointment.starts_at >= (now or utcnow()),
            )
            .order_by(Appointment.starts_at)
        )
    )


def record_remote_consent(session: Session, actor: User, appointment: Appointment, *, method: ConsentMethod) -> None:
    """The accompanying IDEL collects the telehealth consent that is missing, before confirming the visit or at the
    session, instead of a dead end: recorded (and audited) by the one service every consent goes through."""
    if not lacks_remote_consent(appointment):
        raise RuleViolation("Le consentement du patient au télésoin est déjà enregistré.")
    if appointment.state not in (AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN):
        raise RuleViolation("Le consentement se recueille ici pour une séance proposée, confirmée ou en cours.")
    add_consent(
        session,
        actor,
        appointment.patient,
        {"kind": ConsentKind.TELEHEALTH, "method": method, "collected_at": utcnow()},
        zone=appointment_zone(session, appointment),
    )


def confirm(session: Session, actor: Actor, appointment: Appointment, *, now: dt.datetime | None = None) -> None:
    """The accompanying IDEL (or a coordinator for them) confirms the visit. A remote act needs the
    patient's valid consent first. When the visit is offered to several IDELs, the first to confirm
    gets it; the others' offers are withdrawn."""
    now = now or utcnow()
    lock(session, appointment)
    target = MACHINE.target("confirm", appointment.state)
    require_remote_consent(appointment)
    idel_id = actor.professional_id if appointment.accompanying_id is None else appointment.accompanying_id
    if appointment.kind is AppointmentKind.ASSISTED_TELECONSULTATION:
        if idel_id is None:
            raise RuleViolation("Aucun·e IDEL n'est désigné·e pour accompagner ce rendez-vous.")
        if appointment.accompanying_id is None:
            _take_open_visit(session, appointment, session.get(Professional, idel_id))
    # Queued before the write, which inserts it with its own statement (audit.take_queued).
    audit.record(session, actor=actor, action="appointment.confirm", target=appointment, cpts_id=appointment.cpts_id)
    confirmed = {"state": target, "confirmed_at": now, "sequence": appointment.sequence + 1}
    offers = _answer_offers(session, appointment, idel_id, now)
    update_row(session, appointment, confirmed, inserting=audit.take_queued(session), along=[offers])
    sas.status_changed(session, appointment)


def _answer_offers(
    session: Session, appointment: Appointment, idel_id: int | None, now: dt.datetime
) -> tuple[Update, dict[str, Any]]:
    """The pending offers' answer: one UPDATE, without reading them first (the confirming IDEL's accepted, the others
    withdrawn), to run with the appointment's (update_row's `along`: on PostgreSQL in its statement). Offers already
    in the session (an open visit's, read to take it) are given the answer now."""
    parameters = {"of_appointment": appointment.id, "accepting": idel_id, "answered_at": now}
    # The driver does not autoflush: an offer changed in memory and flushed at commit would overwrite this answer.
    session.flush()
    for held in list(session.identity_map.values()):
        # Only what the session has loaded: an expired offer is read again, answered, when next used.
        loaded = inspect(held).dict
        if (
            isinstance(held, VisitOffer)
            and loaded.get("appointment_id") == appointment.id
            and loaded.get("state") is VisitOfferState.PENDING
        ):
            accepted = loaded.get("professional_id") == idel_id
            set_committed_value(held, "state", VisitOfferState.ACCEPTED if accepted else VisitOfferState.WITHDRAWN)
            set_committed_value(held, "responded_at", now)
    return _ANSWER_OFFERS, parameters


def _answer_offers_statement() -> Update:
    # Built once and run by the driver (hub.db.driver_execute): the ORM's bulk UPDATE, its statement built and its
    # session synchronised per request, was a quarter of a confirmation's CPU (issue 17, P7). A NULL IDEL (a
    # coordinator confirming a télésoin) accepts none, as `professional_id = NULL` matched none. Parameters named
    # apart from the columns: SQLAlchemy reserves a column's own name for the values it sets.
    offers = _VISIT_OFFERS.c
    state = offers.state.type
    answer = case(
        (
            offers.professional_id == bindparam("accepting", type_=offers.professional_id.type),
            literal(VisitOfferState.ACCEPTED, state),
        ),
        else_=literal(VisitOfferState.WITHDRAWN, state),
    )
    return (
        update(_VISIT_OFFERS)
        .where(
            offers.appointment_id == bindparam("of_appointment", type_=offers.appointment_id.type),
            offers.state == VisitOfferState.PENDING,
        )
        .values(state=answer, responded_at=bindparam("answered_at", type_=offers.responded_at.type))
    )


_ANSWER_OFFERS = _answer_offers_statement()


def _take_open_visit(session: Session, appointment: Appointment, idel: Professional | None) -> None:
    """Atomically become the visit's IDEL: of two IDELs accepting at once, one wins, one gets a 409."""
    if idel is None or not _has_pending_offer(session, appointment, idel.id):
        raise RuleViolation(
            "Cette visite est proposée à plusieurs IDEL : l'une d'elles l'accepte, ou la coordination la réaffecte."
        )
    won = rows_changed(
        session,
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.accompanying_id.is_(None))
        .values(accompanying_id=idel.id)
        .execution_options(synchronize_session=False),
    )
    if won != 1:
        raise Conflict("Un·e autre IDEL a déjà accepté cette visite.")
    session.refresh(appointment, ["accompanying_id", "accompanying"])
    _check_can_accompany(session, program_of(session, appointment), idel, appointment.patient, appointment.place_kind)
    window = appointment.accompaniment_window
    allocate(
        session,
        appointment,
        [Hold(AllocationResource.PROFESSIONAL, idel.id, *window, idel.full_name)],
        zone=appointment_zone(session, appointment),
    )


def decline(session: Session, actor: Actor, appointment: Appointment, *, reason: str, now=None) -> None:
    """The IDEL declines: their hold is released and the visit goes back to the coordinator with the reason."""
    now = now or utcnow()
    lock(session, appointment)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez la raison du refus : elle est transmise à la coordination."})
    target = MACHINE.target("decline", appointment.state)
    declining = appointment.accompanying_id or actor.professional_id
    offers = _offers(session, appointment)
    mine = [o for o in offers if o.professional_id == declining and o.state is VisitOfferState.PENDING]
    if appointment.accompanying_id is None and not mine:
        raise RuleViolation(
            "Cette visite est proposée à plusieurs IDEL : pour la retirer, réaffectez-la ou annulez-la."
        )
    for offer in mine:
        offer.state, offer.responded_at, offer.reason = VisitOfferState.DECLINED, now, reason.strip()
    if appointment.accompanying_id is not None and appointment.accompanying_id == declining:
        release_idel(session, appointment)
    if any(o.state is VisitOfferState.PENDING for o in offers):
        # Others may still accept the open visit: only this IDEL's answer is recorded.
        audit.record(
            session, actor=actor, action="appointment.decline_offer", target=appointment, cpts_id=appointment.cpts_id
        )
        return
    appointment.state = target
    appointment.declined_reason = reason.strip()
    appointment.sequence += 1
    audit.record(session, actor=actor, action="appointment.decline", target=appointment, cpts_id=appointment.cpts_id)
    sas.status_changed(session, appointment)
    _notify_coordination(session, appointment, kind="visit_declined")


def release_idel(session: Session, appointment: Appointment) -> None:
    idel_id = appointment.accompanying_id
    for allocation in list(appointment.allocations):
        if allocation.resource_kind is AllocationResource.PROFESSIONAL and allocation.resource_id == idel_id:
            appointment.allocations.remove(allocation)
            session.delete(allocation)
    appointment.accompanying_id = None
    appointment.accompanying = None


def reassign(session: Session, actor: Actor, appointment: Appointment, *, idel: Professional, now=None) -> None:
    """The coordinator names another IDEL: the previous one's hold goes, the new one is held and asked."""
    now = now or utcnow()
    lock(session, appointment)
    target = MACHINE.target("reassign", appointment.state)
    if appointment.kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        raise RuleViolation("Seule une téléconsultation assistée a un·e IDEL accompagnant·e.")
    program = program_of(session, appointment)
    _check_can_accompany(session, program, idel, appointment.patient, appointment.place_kind)
    if appointment.accompanying_id is not None:
        release_idel(session, appointment)
    for offer in _offers(session, appointment):
        if offer.state is VisitOfferState.PENDING:
            offer.state, offer.responded_at = VisitOfferState.WITHDRAWN, now
    session.flush()
    appointment.accompanying_id = idel.id
    appointment.accompanying = idel
    window = appointment.accompaniment_window
    allocate(
        session,
        appointment,
        [Hold(AllocationResource.PROFESSIONAL, idel.id, *window, idel.full_name)],
        zone=appointment_zone(session, appointment),
    )
    existing = session.scalar(
        select(VisitOffer).where(VisitOffer.appointment_id == appointment.id, VisitOffer.professional_id == idel.id)
    )
    delay = offer_delay(program)
    if existing is not None:
        existing.state, existing.offered_at, existing.responded_at = VisitOfferState.PENDING, now, None
        existing.round = 1
        zone = appointment_zone(session, appointment)
        existing.expires_at = add_office_minutes(now, delay, zone) if delay else None
    else:
        _offer(session, appointment, idel, round_=1, now=now, delay_minutes=delay)
    appointment.state = target
    appointment.declined_reason = None
    appointment.sequence += 1
    audit.record(
        session,
        actor=actor,
        action="appointment.reassign",
        target=appointment,
        cpts_id=appointment.cpts_id,
        details={"idel_id": idel.id},
    )
    sas.status_changed(session, appointment)


def offer_to_other_idels(session: Session, appointment: Appointment, *, now: dt.datetime) -> list[VisitOffer]:
    """The own IDEL did not answer in time: the visit goes to the territory's other suitable IDELs, ranked as
    the coordinator's suggestions are (suitable_idels). The own IDEL may still accept; the first to accept gets
    it. When nobody suitable is free, the coordination is told."""
    lock(session, appointment)
    if appointment.state is not S.PROPOSED or appointment.kind is not AppointmentKind.ASSISTED_TELECONSULTATION:
        return []
    already = {o.professional_id for o in _offers(session, appointment)}
    if appointment.accompanying_id is not None:
        release_idel(session, appointment)
        session.flush()
    offers = [
        _offer(session, appointment, idel, round_=2, now=now, delay_minutes=None)
        for idel in suitable_idels(session, appointment, exclude=already, now=now)[:SECOND_ROUND_SIZE]
    ]
    audit.record(
        session,
        actor="planificateur",
        action="appointment.offer_widened",
        target=appointment,
        cpts_id=appointment.cpts_id,
        details={"offered_to": [o.professional_id for o in offers]},
    )
    if not offers:
        _notify_coordination(session, appointment, kind="visit_unassigned")
    return offers


def suitable_idels(
    session: Session, appointment: Appointment, *, exclude: set[int], now: dt.datetime | None = None
) -> list[Professional]:
    """The territory's IDELs who may take the visit, best first, as the coordinator's suggestions rank them
    (workflows.idel_ranking): free over the window, working that day, serving the commune for a home visit;
    nearest, then fewest visits this month, then fewest pending offers."""
    ranking = ranked_idels(session, appointment, exclude=exclude, own_id=None, now=now or utcnow())
    return [candidate.professional for candidate in ranking.candidates]


def ranked_idels(
    session: Session, appointment: Appointment, *, exclude: set[int], own_id: int | None, now: dt.datetime
) -> idel_ranking.Ranking:
    """The ranking of the CPTS's IDELs (but `exclude`) for the appointment's visit, with why the others are out."""
    return idel_ranking.rank(
        session,
        pool=[p for p in idel_pool(session, appointment.cpts_id) if p.id not in exclude],
        patient=appointment.patient,
        window=appointment.accompaniment_window,
        at_home=appointment.place_kind in HOME_PLACES,
        own_id=own_id,
        zone=appointment_zone(session, appointment),
        now=now,
    )


def idel_pool(session: Session, cpts_id: int) -> list[Professional]:
    """The CPTS's active IDELs who accompany teleconsultations."""
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


# --- the session itself -----------------------------------------------------------------------------------


def check_in(
    session: Session,
    actor: User,
    appointment: Appointment,
    *,
    identity_method: str,
    patient_location: str,
    callback_phone: str,
    now=None,
) -> None:
    """The patient is there: the identity check (who, when, how), the patient's exact location and a
    call-back phone are recorded first (HAS; S17). The row is locked and read again first: the page read it
    without its lock, and a visit cancelled since must not be checked in (the API's single write checks the
    state and sequence it read instead)."""
    lock(session, appointment)
    checked_in = checked_in_values(
        actor,
        appointment,
        consents_of(appointment.patient),
        identity_method=identity_method,
        patient_location=patient_location,
        callback_phone=callback_phone,
        now=now,
    )
    # Queued before the write, which inserts it with its own statement (audit.take_queued).
    audit.record(session, actor=actor, action="appointment.check_in", target=appointment, cpts_id=appointment.cpts_id)
    update_row(session, appointment, checked_in, inserting=audit.take_queued(session))
    sas.status_changed(session, appointment)


# check_in_row sends the SAS nothing: the status a check-in leads to is not one the SAS is told of. Its view
# (hub.api.appointments, single_write) relies on it: its UPDATE is committed as it runs, so nothing may follow it.
assert fhir.APPOINTMENT_STATUSES[MACHINE.target("check_in", S.CONFIRMED)] not in sas.PUSHED_STATUSES


def check_in_row(session: Session, actor: Actor, visit, consents: Iterable, **given) -> dict[str, Any]:
    """check_in of an appointment read as a plain row (`visit`: its columns and `cpts_id`) with its patient's
    telehealth consents (valid_consent_in's): the same rules, UPDATE and audit row, without an ORM entity (issue 17,
    P7); no SAS message (see above). Returns the columns written."""
    checked_in = checked_in_values(actor, visit, consents, **given)
    target = ("appointments", visit.id)
    audit.record(session, actor=actor, action="appointment.check_in", target=target, cpts_id=visit.cpts_id)
    return _write_unless_changed(session, visit, checked_in, "check_in")


def checked_in_values(
    actor: Actor,
    appointment,
    consents: Iterable,
    *,
    identity_method: str,
    patient_location: str,
    callback_phone: str,
    now=None,
) -> dict[str, Any]:
    """check_in's rules on the appointment (an entity or a plain row of its columns) whose patient has `consents`:
    the columns it writes."""
    target = MACHINE.target("check_in", appointment.state)
    require_consent_for(appointment.kind, consents)
    errors = {}
    if not (identity_method or "").strip():
        errors["identity_method"] = "Indiquez comment l'identité a été vérifiée (pièce d'identité, INS, traits)."
    if not (patient_location or "").strip():
        errors["patient_location"] = "Indiquez où se trouve exactement le patient."
    if not (callback_phone or "").strip():
        errors["callback_phone"] = "Un numéro pour rappeler le patient en cas de coupure est obligatoire."
    if errors:
        raise ValidationFailed(errors)
    checked_in = {
        "identity_checked_by_user_id": actor.id,
        "identity_checked_at": now or utcnow(),
        "identity_check_method": identity_method.strip(),
        "patient_location": patient_location.strip(),
        "callback_phone": callback_phone.strip(),
        "state": target,
        "sequence": appointment.sequence + 1,
    }
    return checked_in


# What the verbs on a session read beyond the appointment's row, to load with it (appointment_for's `load`, lock())
# rather than one lazy load at a time: the patient's consents (a remote act needs one in force). The API's check-in
# and checklist read them as plain rows (hub.api.appointments._SESSION_READ).
CONSENTS_LOAD = (joinedload(Appointment.patient, innerjoin=True).joinedload(Patient.consents),)

CHECKLIST_STATES = frozenset({S.CONFIRMED, S.CHECKED_IN})
# Before the session, meaning before it is marked done: a specialist running late, or a session running over, must
# not leave the IDEL who received the patient with a session that can never be done (its saved time tells when).
# A session whose time is over with nobody received is not taken: that checklist would attest nothing.
CHECKLIST_TOO_LATE = (
    "La séance est finie : la liste de vérification se remplit et s'enregistre avant ou pendant la séance."
)
CHECKLIST_NOT_SAVED = (
    "La liste de vérification avant la séance (HAS) n'a pas été enregistrée : "
    "enregistrez-la avant de noter la séance terminée."
)
NOT_STARTED = "La séance n'a pas encore commencé : elle ne peut être notée terminée qu'après son heure de début."


def is_minor_at_session(session: Session, appointment: Appointment) -> bool:
    return is_minor_on(appointment.starts_at, appointment_zone(session, appointment), appointment.patient.birth_date)


def is_minor_on(starts_at: dt.datetime, zone: str, birth_date: dt.date) -> bool:
    """Whether someone born on `birth_date` is under 18 on the local day (in the program's `zone`) of `starts_at`."""
    return age_on(birth_date, fees.local_day(starts_at, zone)) < 18


def save_checklist(
    session: Session, actor: User, appointment: Appointment, *, items: dict[str, bool], now: dt.datetime | None = None
) -> None:
    """The HAS pre-session checklist (camera, sound, light, privacy, an adult with a minor), complete, recorded
    (who, when) before the session starts, the telehealth consent in force; the identity, the location and the
    call-back phone are traced at the check-in. Saved again, it replaces the previous answers; refused once the
    session's time is over unless the patient was received. Locked and read again first, as check_in."""
    lock(session, appointment)
    minor = is_minor_at_session(session, appointment)
    saved = checklist_values(actor, appointment, consents_of(appointment.patient), minor=minor, items=items, now=now)
    # Queued before the write, which inserts it with its own statement (audit.take_queued).
    audit.record(session, actor=actor, action="appointment.checklist", target=appointment, cpts_id=appointment.cpts_id)
    update_row(session, appointment, saved, inserting=audit.take_queued(session))


def save_checklist_row(
    session: Session, actor: Actor, visit, consents: Iterable, *, minor: bool, items: dict[str, bool]
) -> dict[str, Any]:
    """save_checklist of an appointment read as a plain row (check_in_row's), `minor`: the patient on the
    session's day (is_minor_on). Returns the columns written."""
    saved = checklist_values(actor, visit, consents, minor=minor, items=items)
    target = ("appointments", visit.id)
    audit.record(session, actor=actor, action="appointment.checklist", target=target, cpts_id=visit.cpts_id)
    return _write_unless_changed(session, visit, saved, "checklist")


# The row read without a lock changed before the write: a coordinator cancelled the visit, another verb ran.
CHANGED_MEANWHILE = (
    "Action impossible : le rendez-vous vient d'être modifié par ailleurs. Rechargez-le avant de recommencer."
)


def _write_unless_changed(session: Session, visit, values: dict[str, Any], verb: str) -> dict[str, Any]:
    """The `values` a verb worked out from the appointment read as a plain row (`visit`, not locked), written with
    the audit row queued for it only if its state and sequence are still those read, else 409: a visit cancelled
    meanwhile must not be checked in, nor one writer's columns overwritten by another's."""
    written = update_by_id_if_unchanged(
        session,
        Appointment,
        visit.id,
        values,
        unchanged={"state": visit.state, "sequence": visit.sequence},
        inserting=audit.take_queued(session),
    )
    if written is None:
        raise InvalidTransition(CHANGED_MEANWHILE, action=verb)
    return written


def checklist_values(
    actor: Actor,
    appointment,
    consents: Iterable,
    *,
    minor: bool,
    items: dict[str, bool],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """save_checklist's rules on the appointment (an entity or a plain row of its columns) whose patient has
    `consents` and is a minor on the session's day or not: the columns it writes."""
    now = now or utcnow()
    if appointment.state not in CHECKLIST_STATES:
        raise InvalidTransition(
            f"Action impossible : le rendez-vous est « {APPOINTMENT_STATE_LABELS[appointment.state]} ».",
            current_state=appointment.state.value,
            action="checklist",
        )
    if now >= appointment.ends_at and appointment.state is not S.CHECKED_IN:
        raise RuleViolation(CHECKLIST_TOO_LATE)
    require_consent_for(appointment.kind, consents)
    missing = {key: f"À cocher : {label}." for key, label in CHECKLIST_ITEMS.items() if not items.get(key)}
    if minor and not items.get("adult_present"):
        missing["adult_present"] = "Un adulte doit accompagner un patient mineur."
    if missing:
        raise ValidationFailed(missing, "La liste de vérification avant la séance n'est pas complète.")
    saved = {
        "checklist": json.dumps({key: bool(value) for key, value in items.items()}, sort_keys=True),
        "checklist_saved_at": now,
        "checklist_saved_by_user_id": actor.id,
    }
    return saved


def complete(session: Session, actor: Actor, appointment: Appointment, *, now: dt.datetime | None = None) -> None:
    """Done, once the session has started, with the HAS pre-session checklist saved before it (save_checklist)
    and, for a kiné's télésoin session, its six rituals recorded (workflows.rituals). What else ends with the
    session (its referral) follows in workflows.completion."""
    now = now or utcnow()
    target = MACHINE.target("complete", appointment.state)
    if now < appointment.starts_at:
        raise RuleViolation(NOT_STARTED)
    require_remote_consent(appointment)
    if appointment.checklist_saved_at is None:
        raise RuleViolation(CHECKLIST_NOT_SAVED)
    rituals.require_recorded(session, appointment)
    appointment.state = target
    appointment.sequence += 1
    fees.accrue_appointment(session, appointment, zone=appointment_zone(session, appointment))
    audit.record(session, actor=actor, action="appointment.complete", target=appointment, cpts_id=appointment.cpts_id)
    sas.status_changed(session, appointment)


def degrade(session: Session, actor: Actor, appointment: Appointment, *, reason: str) -> None:
    """The video failed and the act went on by phone: recorded, and not billable as télésoin."""
    target = MACHINE.target("degrade", appointment.state)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Décrivez l'incident technique."})
    appointment.degraded_reason = reason.strip()
    appointment.state = target
    appointment.sequence += 1
    audit.record(session, actor=actor, action="appointment.degrade", target=appointment, cpts_id=appointment.cpts_id)
    sas.status_changed(session, appointment)


def cancel(session: Session, actor: Actor, appointment: Appointment, *, reason: str, now=None) -> None:
    """Cancel: every hold is released, pending offers withdrawn, everyone involved told; when patients wait for
    the program, the freed slot becomes the coordinator's task to offer (workflows.freed_slots). Within 24 h of
    the start it is a late cancellation — which is still not a no-show."""
    now = now or utcnow()
    lock(session, appointment)
    target = MACHINE.target("cancel", appointment.state)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez le motif de l'annulation."})
    release(session, appointment)
    for offer in _offers(session, appointment):
        if offer.state is VisitOfferState.PENDING:
            offer.state, offer.responded_at = VisitOfferState.WITHDRAWN, now
    appointment.state = target
    appointment.cancelled_at = now
    appointment.cancelled_by_user_id = getattr(actor, "id", None)  # a User or the API's Caller; None for a job's label
    appointment.cancel_reason = reason.strip()
    appointment.is_late_cancellation = appointment.starts_at - now < LATE_CANCELLATION
    appointment.sequence += 1
    _leave_group_session(session, appointment)
    audit.record(
        session,
        actor=actor,
        action="appointment.cancel",
        target=appointment,
        cpts_id=appointment.cpts_id,
        details={"late": appointment.is_late_cancellation},
    )
    sas.status_changed(session, appointment)
    for professional_id in {appointment.performer_id, appointment.accompanying_id} - {None}:
        professional = session.get(Professional, professional_id)
        _notify_professional(
            session,
            professional,
            appointment,
            kind="appointment_cancelled",
            key=f"cancel:{appointment.id}:{professional_id}",
        )
    _notify_patient(session, appointment, kind="appointment_cancelled", key=f"cancel:{appointment.id}:patient")
    if appointment.slot is not None:
        freed_slots.slot_freed(
            session,
            appointment.slot,
            reason=FreedSlotReason.CANCELLATION,
            now=now,
            cancelled_appointment_id=appointment.id,
        )


def record_no_show(session: Session, actor: Actor, appointment: Appointment, *, now=None) -> None:
    """A person records that the patient did not come; never automatic, never before the start."""
    now = now or utcnow()
    target = MACHINE.target("no_show", appointment.state)
    if now < appointment.starts_at:
        raise RuleViolation("Une absence ne peut être notée qu'après l'heure du rendez-vous.")
    appointment.state = target
    appointment.sequence += 1
    appointment.no_show_recorded_by_user_id = actor.id
    audit.record(session, actor=actor, action="appointment.no_show", target=appointment, cpts_id=appointment.cpts_id)
    sas.status_changed(session, appointment)


# --- helpers ----------------------------------------------------------------------------------------------


def lock(session: Session, appointment: Appointment) -> None:
    """Take the appointment's row lock and re-read it, so that two verbs on one appointment (an IDEL
    confirming while the job widens the offer) run one after the other. SQLite's BEGIN IMMEDIATE
    transaction already serialises writers. Read so already in this transaction (the API's access check,
    appointment_for(lock=True, load=CONSENTS_LOAD)), it is not read again."""
    if row_locks.held(session, appointment):
        return
    # One statement: the lock, the fresh row, and the patient's consents every remote verb checks.
    session.execute(
        select(Appointment)
        .where(Appointment.id == appointment.id)
        .options(*CONSENTS_LOAD)
        .with_for_update(of=Appointment)
        .execution_options(populate_existing=True)
    ).unique().one()


def _offers(session: Session, appointment: Appointment) -> list[VisitOffer]:
    return list(session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id)))


def _has_pending_offer(session: Session, appointment: Appointment, professional_id: int) -> bool:
    return any(
        o.professional_id == professional_id and o.state is VisitOfferState.PENDING
        for o in _offers(session, appointment)
    )


def program_of(session: Session, appointment: Appointment) -> SessionProgram:
    """The program the appointment was booked in (every booking has one)."""
    if appointment.slot is not None:
        return appointment.slot.program
    return session.get_one(SessionProgram, appointment.program_id)


def appointment_zone(session: Session, appointment: Appointment) -> str:
    """The zone of the program the appointment was booked in."""
    return program_of(session, appointment).zone


def add_office_minutes(start: dt.datetime, minutes: int, zone: str) -> dt.datetime:
    """`minutes` of office time (Monday to Friday, 8 h – 19 h local) after `start`."""
    tz = ZoneInfo(zone)
    cursor = start.astimezone(tz)
    remaining = dt.timedelta(minutes=minutes)
    while remaining > dt.timedelta(0):
        opens = cursor.replace(hour=OFFICE_HOURS[0].hour, minute=0, second=0, microsecond=0)
        closes = cursor.replace(hour=OFFICE_HOURS[1].hour, minute=0, second=0, microsecond=0)
        if cursor.weekday() >= 5 or cursor >= closes:
            cursor = (opens + dt.timedelta(days=1)).replace(tzinfo=tz)
            continue
        cursor = max(cursor, opens)
        step = min(remaining, closes - cursor)
        cursor += step
        remaining -= step
    return cursor.astimezone(dt.UTC)


def _notify_professional(session, professional, appointment, *, kind: str, key: str) -> None:
    outbox.email_professional(
        session,
        professional,
        kind=kind,
        payload={"appointment_id": appointment.id},
        key=f"{key}:{appointment.sequence}",
        cpts_id=appointment.cpts_id,
    )


def _notify_patient(session, appointment, *, kind: str, key: str) -> None:
    patient = appointment.patient
    channel, recipient = ("sms", patient.phone) if patient.phone else ("email", patient.email)
    if not recipient:
        return
    outbox.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        kind=kind,
        cpts_id=appointment.cpts_id,
        payload={"appointment_id": appointment.id},
        idempotency_key=f"{kind}:{key}:{appointment.sequence}",
    )


def _notify_coordination(session, appointment, *, kind: str) -> None:
    coordinators = directory.coordinators_by_cpts(session, [appointment.cpts_id]).get(appointment.cpts_id, [])
    for coordinator in coordinators:
        _notify_professional(session, coordinator, appointment, kind=kind, key=f"{appointment.id}:{coordinator.id}")
