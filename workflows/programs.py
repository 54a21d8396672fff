"""Session programs and their series operations: create, change the whole series, change this and the
following occurrences, move or cancel one occurrence, cancel the series. Past slots are history and
are never touched; booked future slots are never silently dropped."""

import datetime as dt
import json

from dateutil.rrule import rrulestr
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session, joinedload

from hub import audit
from hub.db import utcnow
from hub.errors import Conflict, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    ASSISTED_PROGRAM_KINDS,
    Appointment,
    Organisation,
    OrganisationKind,
    Profession,
    Professional,
    ProgramClosure,
    ProgramKind,
    SessionProgram,
    Slot,
    SlotState,
)
from hub.services import directory, resources
from scheduling.recurrence import InvalidRecurrence, Recurrence, describe, localise, parse_rrule
from scheduling.slots import GenerationReport, booked_slot_ids, recurrence_of
from workflows import appointments, freed_slots, video

_CANCELLABLE = appointments.MACHINE.transitions["cancel"][0]
PERFORMERS = {
    ProgramKind.ASSISTED_TELECONSULTATION: {Profession.SPECIALIST, Profession.GENERAL_PRACTITIONER},
    ProgramKind.PHARMACY_TELECONSULTATION: {Profession.SPECIALIST, Profession.GENERAL_PRACTITIONER},
    ProgramKind.TELESOIN: {
        Profession.PHYSIOTHERAPIST,
        Profession.SPEECH_THERAPIST,
        Profession.NURSE,
        Profession.ORTHOPTIST,
        Profession.MIDWIFE,
        Profession.PHARMACIST,
    },
}
SERIES_FIELDS = (
    "name",
    "organisation_id",
    "room_id",
    "kit_id",
    "slot_count",
    "slot_minutes",
    "slot_interval_minutes",
    "accompaniment_before_minutes",
    "accompaniment_after_minutes",
    "skip_public_holidays",
    "own_idel_delay_minutes",
    "horizon_weeks",
    "report_delay_doctors_hours",
    "report_delay_patient_hours",
    "valid_until",
    "video_url_template",
)


def first_occurrence(rule: str, first_day: dt.date, time_of_day: dt.time) -> dt.datetime:
    """The rule's first wall time on or after `first_day` at `time_of_day` (the program's DTSTART)."""
    rule = parse_rrule(rule)
    parts = [p for p in rule.split(";") if not p.startswith(("UNTIL=", "COUNT="))]
    start = dt.datetime.combine(first_day, time_of_day)
    following = rrulestr(";".join(parts), dtstart=start).after(start, inc=True)
    if following is None:
        raise ValidationFailed({"rrule": "Cette règle ne produit aucune séance."})
    return following


def _check_refs(session: Session, cpts_id: int, data: dict) -> None:
    errors = {}
    performer = session.get(Professional, data["performer_id"]) if data.get("performer_id") else None
    if performer is None or performer.cpts_id != cpts_id:
        errors["performer_id"] = "Choisissez le professionnel qui réalise les séances."
    elif performer.profession not in PERFORMERS[data["kind"]]:
        errors["performer_id"] = "Ce professionnel ne peut pas réaliser ce type de séance."
    if data.get("organisation_id"):
        organisation = session.get(Organisation, data["organisation_id"])
        if organisation is None or organisation.tenant_id != cpts_id:
            errors["organisation_id"] = "Structure inconnue dans la CPTS."
    if data.get("kind") is ProgramKind.PHARMACY_TELECONSULTATION and "organisation_id" not in errors:
        officine_error = _officine_error(session, data.get("organisation_id"))
        if officine_error:
            errors["organisation_id"] = officine_error
    errors |= resources.assignment_errors(session, cpts_id, data)
    if data.get("video_url_template"):
        try:
            video.check_template(data["video_url_template"])
        except ValidationFailed as refused:
            errors |= refused.errors
    if data.get("valid_until") and data.get("first_day") and data["valid_until"] < data["first_day"]:
        errors["valid_until"] = "La fin de validité précède le début."
    if errors:
        raise ValidationFailed(errors)


def _officine_error(session: Session, organisation_id: int | None) -> str | None:
    """An officine's teleconsultation needs the officine and a pharmacist of it who accompanies teleconsultations."""
    organisation = session.get(Organisation, organisation_id) if organisation_id else None
    if organisation is None or organisation.kind is not OrganisationKind.PHARMACY:
        return "Choisissez l'officine où le patient est accueilli."
    if not directory.officine_pharmacists(session, organisation.id):
        return (
            f"Aucun·e pharmacien·ne de {organisation.name} n'accompagne de téléconsultation : "
            "renseignez-le dans sa fiche avant de créer le programme."
        )
    return None


SHAPE_FIELDS = (
    "kind",
    "slot_count",
    "slot_minutes",
    "slot_interval_minutes",
    "accompaniment_before_minutes",
    "accompaniment_after_minutes",
    "room_id",
    "kit_id",
)


def check_shape(values: dict) -> None:
    """Refuse an afternoon whose later slots could never be booked: every appointment of a program holds its
    room and its kit (the same ones for each slot) over the whole accompaniment window, so the next slot must
    not start before that window is over. The patients' IDELs differ from slot to slot, so they do not count;
    the officine's pharmacist is the same for every slot, so they do."""
    slot = values["slot_minutes"]
    interval = values.get("slot_interval_minutes")
    if interval is not None and interval < slot:
        raise ValidationFailed(
            {"slot_interval_minutes": f"L'intervalle ne peut pas être plus court qu'un créneau ({slot} min)."}
        )
    at_pharmacy = values["kind"] is ProgramKind.PHARMACY_TELECONSULTATION
    if values.get("slot_count", 1) < 2 or not (values.get("kit_id") or values.get("room_id") or at_pharmacy):
        return
    window = slot
    if values["kind"] in ASSISTED_PROGRAM_KINDS:
        window += values.get("accompaniment_before_minutes", 0) + values.get("accompaniment_after_minutes", 0)
    if (interval or slot) < window:
        if values.get("kit_id"):
            held = "le matériel serait réservé"
        elif values.get("room_id"):
            held = "la salle serait réservée"
        else:
            held = "le pharmacien de l'officine serait réservé"
        raise ValidationFailed(
            {
                "slot_interval_minutes": (
                    f"Avec {interval or slot} min entre deux débuts de créneau, {held} deux fois : "
                    f"chaque rendez-vous l'occupe {window} min (accompagnement compris). "
                    f"Indiquez un intervalle d'au moins {window} min."
                )
            }
        )


def _recurrence_errors(program: SessionProgram) -> None:
    try:
        recurrence_of(program)
    except InvalidRecurrence as exc:
        raise ValidationFailed({"rrule": str(exc)}) from exc


def create_program(session: Session, actor, data: dict, *, zone: str, now: dt.datetime | None = None) -> SessionProgram:
    """Create a program from its rule, first day and time of day, and generate its slots over the horizon;
    its wall times are in `zone`, the territory's."""
    now = now or utcnow()
    data = dict(data)
    _check_refs(session, actor.cpts_id, data)
    check_shape(data)
    first_day, time_of_day = data.pop("first_day"), data.pop("time_of_day")
    try:
        start_local = first_occurrence(data["rrule"], first_day, time_of_day)
        localise(start_local, zone, strict=True)
    except (InvalidRecurrence, ValueError) as exc:
        raise ValidationFailed({"rrule": str(exc)}) from exc
    program = SessionProgram(
        cpts_id=actor.cpts_id,
        zone=zone,
        start_local=start_local,
        valid_from=first_day,
        **data,
    )
    program.rrule = parse_rrule(program.rrule)
    _recurrence_errors(program)
    session.add(program)
    session.flush()  # slots point at the new id
    report = freed_slots.generate_slots(session, program, now=now)
    audit.record(session, actor=actor, action="program.create", target=program, details={"slots": report.created})
    return program


def update_series(session: Session, actor, program: SessionProgram, changes: dict, *, now=None) -> GenerationReport:
    """Change the whole series from now on; free future slots follow, booked ones that no longer fit are
    reported (their appointments stay until the coordinator moves them)."""
    now = now or utcnow()
    changes = dict(changes)
    time_of_day = changes.pop("time_of_day", None)
    rule = changes.pop("rrule", None)
    unknown = set(changes) - set(SERIES_FIELDS)
    if unknown:
        raise ValidationFailed(dict.fromkeys(sorted(unknown), "Champ non modifiable sur une série."))
    _check_refs(
        session,
        program.cpts_id,
        {
            "performer_id": program.performer_id,
            "kind": program.kind,
            "organisation_id": program.organisation_id,
            "first_day": program.valid_from,
            **changes,
        },
    )
    check_shape({key: getattr(program, key) for key in SHAPE_FIELDS} | changes)
    for key, value in changes.items():
        setattr(program, key, value)
    if rule is not None or time_of_day is not None:
        try:
            program.rrule = parse_rrule(rule or program.rrule)
            program.start_local = first_occurrence(
                program.rrule, program.valid_from, time_of_day or program.start_local.time()
            )
        except InvalidRecurrence as exc:
            raise ValidationFailed({"rrule": str(exc)}) from exc
    _recurrence_errors(program)
    session.flush()
    if changes.get("video_url_template"):
        video.give_rooms(session, program, now=now)
    report = freed_slots.generate_slots(session, program, now=now)
    audit.record(
        session,
        actor=actor,
        action="program.update",
        target=program,
        details={
            "fields": sorted([*changes, *(["rrule"] if rule else []), *(["time"] if time_of_day else [])]),
            "created": report.created,
            "removed": report.removed,
            "booked_not_fitting": [s.id for s in report.booked_no_longer_fitting],
        },
    )
    return report


def split_series(session: Session, actor, program: SessionProgram, *, from_day: dt.date, changes: dict, now=None):
    """This occurrence and the following ones: the program ends the day before, and a copy with the
    changes starts on `from_day`, keeping the earlier exceptions (EXDATE, closures) that still apply."""
    now = now or utcnow()
    if from_day <= program.valid_from:
        return program, update_series(session, actor, program, changes, now=now)
    data = {key: getattr(program, key) for key in SERIES_FIELDS}
    data |= {
        "kind": program.kind,
        "performer_id": program.performer_id,
        "rrule": program.rrule,
        "time_of_day": program.start_local.time(),
        "first_day": from_day,
    }
    original_until = program.valid_until
    program.valid_until = from_day - dt.timedelta(days=1)
    session.flush()
    freed_slots.generate_slots(session, program, now=now)
    # The series goes on in its program's zone.
    new = create_program(session, actor, data | {"valid_until": original_until} | changes, zone=program.zone, now=now)
    new.exdates = program.exdates
    new.closures = [
        ProgramClosure(first_day=c.first_day, last_day=c.last_day, reason=c.reason)
        for c in program.closures
        if c.last_day >= from_day
    ]
    _recurrence_errors(new)
    session.flush()
    report = freed_slots.generate_slots(session, new, now=now)
    audit.record(session, actor=actor, action="program.split", target=program, details={"new_program": new.id})
    return new, report


def _occurrence_slots(session: Session, program: SessionProgram, occurrence_start: dt.datetime) -> list[Slot]:
    slots = list(
        session.scalars(
            select(Slot)
            .where(Slot.program_id == program.id, Slot.occurrence_start == occurrence_start)
            .order_by(Slot.position)
        )
    )
    if not slots:
        raise NotFound("Séance introuvable.")
    return slots


def move_occurrence(
    session: Session,
    actor,
    program: SessionProgram,
    *,
    occurrence_start: dt.datetime,
    new_start_local: dt.datetime,
    now=None,
) -> list[Slot]:
    """Move one occurrence to another local time (e.g. Tuesday instead of a closed Monday). Only free
    slots move: a booked one must be moved or cancelled first, so nobody is silently displaced."""
    now = now or utcnow()
    slots = _occurrence_slots(session, program, occurrence_start)
    if booked_slot_ids(session, [s.id for s in slots]):
        raise RuleViolation("Des rendez-vous sont pris sur cette séance : annulez-les ou déplacez-les d'abord.")
    try:
        new_start = localise(new_start_local, program.zone, strict=True)
    except ValueError as exc:
        raise ValidationFailed({"new_start": str(exc)}) from exc
    if new_start <= now:
        raise ValidationFailed({"new_start": "La nouvelle date doit être dans le futur."})
    _add_exdate(program, occurrence_start)
    length = dt.timedelta(minutes=program.slot_minutes)
    for slot in slots:
        slot.starts_at = new_start + program.slot_start_offset(slot.position)
        slot.ends_at = slot.starts_at + length
        slot.occurrence_start = new_start
        slot.is_exception = True
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="program.move_occurrence",
        target=program,
        details={"from": occurrence_start.isoformat(), "to": new_start.isoformat()},
    )
    return slots


def cancel_occurrence(
    session: Session, actor, program: SessionProgram, *, occurrence_start: dt.datetime, reason: str, now=None
) -> int:
    """Cancel one occurrence: its appointments are cancelled (everyone told), free slots disappear, and
    an EXDATE keeps the rule from bringing it back. Returns the number of appointments cancelled."""
    now = now or utcnow()
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez le motif de l'annulation."})
    slots = _occurrence_slots(session, program, occurrence_start)
    cancelled = _cancel_slots(session, actor, slots, reason=reason, now=now)
    _add_exdate(program, occurrence_start)
    audit.record(
        session,
        actor=actor,
        action="program.cancel_occurrence",
        target=program,
        details={"occurrence": occurrence_start.isoformat(), "appointments": cancelled},
    )
    return cancelled


def cancel_series(session: Session, actor, program: SessionProgram, *, reason: str, now=None) -> int:
    """Stop the series from now on: no open future slot and no future hold remain; the number of
    appointments cancelled."""
    now = now or utcnow()
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez le motif de l'annulation."})
    if not program.is_active:
        raise Conflict("Cette série est déjà arrêtée.")
    future = list(session.scalars(select(Slot).where(Slot.program_id == program.id, Slot.starts_at >= now)))
    cancelled = _cancel_slots(session, actor, future, reason=reason, now=now)
    program.is_active = False
    audit.record(
        session, actor=actor, action="program.cancel_series", target=program, details={"appointments": cancelled}
    )
    return cancelled


def bookings_to_cancel(session: Session, program: SessionProgram, *, now=None) -> int:
    """How many appointments stopping the series now would cancel (the page warns before)."""
    future = select(Slot.id).where(Slot.program_id == program.id, Slot.starts_at >= (now or utcnow()))
    return session.execute(
        select(func.count())
        .select_from(Appointment)
        .where(Appointment.slot_id.in_(future), Appointment.state.in_(_CANCELLABLE))
    ).scalar_one()


def _cancel_slots(session: Session, actor, slots: list[Slot], *, reason: str, now: dt.datetime) -> int:
    ids = [s.id for s in slots]
    live = list(
        session.scalars(
            select(Appointment).where(
                Appointment.slot_id.in_(ids) if ids else false(), Appointment.state.in_(_CANCELLABLE)
            )
        )
    )
    for appointment in live:
        appointments.cancel(session, actor, appointment, reason=reason, now=now)
    freed_slots.slots_gone(session, ids, now=now)  # the cancellations above freed nothing to offer
    session.flush()
    kept = booked_slot_ids(session, ids) | {
        a.slot_id for a in session.scalars(select(Appointment).where(Appointment.slot_id.in_(ids) if ids else false()))
    }
    for slot in slots:
        if slot.id in kept:
            slot.state = SlotState.CANCELLED
        else:
            session.delete(slot)
    session.flush()
    return len(live)


def _add_exdate(program: SessionProgram, occurrence_start: dt.datetime) -> None:
    exdates = json.loads(program.exdates or "[]")
    instant = occurrence_start.astimezone(dt.UTC).isoformat()
    if instant not in exdates:
        program.exdates = json.dumps(sorted([*exdates, instant]))


def add_closure(
    session: Session,
    actor,
    program: SessionProgram,
    *,
    first_day: dt.date,
    last_day: dt.date,
    reason: str | None,
    now=None,
) -> GenerationReport:
    if last_day < first_day:
        raise ValidationFailed({"last_day": "La fin de la fermeture précède son début."})
    program.closures.append(ProgramClosure(first_day=first_day, last_day=last_day, reason=reason))
    session.flush()
    report = freed_slots.generate_slots(session, program, now=now or utcnow())
    audit.record(
        session,
        actor=actor,
        action="program.closure",
        target=program,
        details={"from": first_day.isoformat(), "to": last_day.isoformat()},
    )
    return report


def get_program(session: Session, program_id: int, *, cpts_id: int) -> SessionProgram:
    program = session.get(SessionProgram, program_id)
    if program is None or program.cpts_id != cpts_id:
        raise NotFound("Programme introuvable.")
    return program


def list_programs(session: Session, cpts_id: int) -> list[SessionProgram]:
    return list(
        session.scalars(
            select(SessionProgram)
            .options(joinedload(SessionProgram.room), joinedload(SessionProgram.kit))
            .where(SessionProgram.cpts_id == cpts_id)
            .order_by(SessionProgram.name, SessionProgram.id)
        )
    )


def describe_program(program: SessionProgram) -> str:
    return describe(Recurrence(rrule=program.rrule, start=program.start_local, zone=program.zone))
