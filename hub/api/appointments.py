from typing import NamedTuple

from flask import request, url_for
from flask_login import current_user
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import aliased

from hub import audit
from hub.api import blueprint, json_body, load_json
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, appointment_row_for
from hub.db import driver_rows
from hub.errors import ValidationFailed
from hub.http.access import Preload, access, light_read, preloaded_row, single_write
from hub.http.request import db
from hub.models import (
    Appointment,
    Consent,
    ConsentKind,
    Patient,
    Professional,
    Resource,
    SessionProgram,
    Slot,
    User,
)
from hub.schemas.base import load
from hub.schemas.scheduling import (
    AppointmentIn,
    AppointmentOut,
    CheckInIn,
    ChecklistIn,
    NoBodyIn,
    ReasonIn,
    ReassignIn,
    appointment_entity_out,
    appointment_out,
)
from hub.services import accounts, idempotency
from workflows import appointments, completion, sas

REPLAYED = "Idempotent-Replayed"

# The schemas of the booking and the state changes, built once: a schema's construction copies its declared
# fields, which for AppointmentOut costs about half a millisecond, as much as its dump (issue 17, P7). They keep no
# state per request.
_OUT = AppointmentOut()
_IN = AppointmentIn()
_NO_BODY = NoBodyIn()
_REASON = ReasonIn()
_CHECK_IN = CheckInIn()
_CHECKLIST = ChecklistIn()
_REASSIGN = ReassignIn()
# What the read shows (AppointmentOut.COLUMNS) with the room's and the kit's names, as plain columns: an appointment
# has half as many columns again, and an ORM entity costs more CPU to build than its statement (issue 17, P7: twice
# per teleconsultation).
_ROOM, _KIT = aliased(Resource, name="room"), aliased(Resource, name="kit")
_SHOWN = (
    *(getattr(Appointment, name) for name in AppointmentOut.COLUMNS),
    _ROOM.name.label("room_name"),
    _KIT.name.label("kit_name"),
)
# The read joined to the Bearer token's lookup (accounts.CALLER_OF_TOKEN), one round trip (hub.http.access.Preload):
# the appointment only in the caller's CPTS and for a usable token, one row per role. Its `cpts_id` is the caller's,
# the appointment's by that join.
_READ_WITH_CALLER = (
    accounts.CALLER_OF_TOKEN.add_columns(*_SHOWN)
    .outerjoin(
        Appointment,
        and_(Appointment.id == bindparam("appointment_id"), Appointment.cpts_id == User.cpts_id, accounts.TOKEN_USABLE),
    )
    .outerjoin(_ROOM, _ROOM.id == Appointment.room_id)
    .outerjoin(_KIT, _KIT.id == Appointment.kit_id)
)

# What the check-in and the checklist read, as plain rows (one per telehealth consent of the patient, or one with
# none): the answer's columns with the room's and the kit's names, what the rules read (the CPTS), the patient's
# birth date and the zone of the program the visit was booked in (its
# slot's, else its own: appointments.program_of) for the checklist's minor, and the patient's telehealth consents,
# the only kind the rules read. An ORM entity with its patient, consents, slot and program cost about a third of
# these requests' CPU (issue 17, P7). Not locked, as appointment_for's read for these verbs was not.
_SESSION_READ = (
    select(
        *_SHOWN,
        Appointment.cpts_id,
        Patient.birth_date,
        SessionProgram.zone.label("program_zone"),
        Consent.kind.label("consent_kind"),
        Consent.withdrawn_at.label("consent_withdrawn_at"),
    )
    .join(Patient, Patient.id == Appointment.patient_id)
    .outerjoin(_ROOM, _ROOM.id == Appointment.room_id)
    .outerjoin(_KIT, _KIT.id == Appointment.kit_id)
    .outerjoin(Slot, Slot.id == Appointment.slot_id)
    .outerjoin(SessionProgram, SessionProgram.id == func.coalesce(Slot.program_id, Appointment.program_id))
    .outerjoin(Consent, and_(Consent.patient_id == Patient.id, Consent.kind == ConsentKind.TELEHEALTH))
    .where(Appointment.id == bindparam("appointment_id"), Appointment.cpts_id == bindparam("cpts_id"))
)


class _ConsentRow(NamedTuple):
    """A consent as the rules read it (identity.valid_consent_in)."""

    kind: ConsentKind
    is_valid: bool


@blueprint.post("/appointments")
@access(Permission.APPOINTMENTS_BOOK)
def book_appointment():
    """Book a patient into a slot. With an `Idempotency-Key`, a repeated request gets the first answer."""
    data = load_json(_IN)
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return _book(data)
    fingerprint = idempotency.fingerprint(request.method, request.path, json_body())
    claim = idempotency.claim(db(), current_user.id, idempotency.check_key(key), fingerprint)
    if isinstance(claim, idempotency.StoredAnswer):
        return _replay(claim)
    body, status, headers = _book(data)
    idempotency.answer(db(), claim, status, body)
    return body, status, headers


def _book(data: dict):
    inputs = appointments.requested_booking(db(), current_user, slot_id=data["slot_id"], patient_id=data["patient_id"])
    appointment = appointments.book_requested(
        db(),
        current_user,
        inputs,
        place_kind=data["place_kind"],
        accompanying_id=data.get("accompanying_id"),
        telesoin=appointments.TelesoinAct.from_booking(data),
    )
    if data.get("sas_id"):
        sas.record_origin(db(), appointment, data["sas_id"])
    body = _OUT.dump(appointment) | {"warnings": appointments.booking_warnings(db(), appointment)}
    return body, 201, {"Location": url_for("api.get_appointment", appointment_id=appointment.id)}


def _professional(professional_id: int) -> Professional:
    professional = db().get(Professional, professional_id)
    if professional is None:
        raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
    return professional


def _replay(answer: idempotency.StoredAnswer):
    headers = {REPLAYED: "true"}
    appointment_id = answer.body.get("id")
    if answer.status == 201 and appointment_id is not None:
        headers["Location"] = url_for("api.get_appointment", appointment_id=appointment_id)
        target = ("appointments", appointment_id)
        audit.record(db(), actor=current_user, action="appointment.book_replayed", target=target)
    return answer.body, answer.status, headers


@blueprint.get("/appointments/<int:appointment_id>")
@access(Permission.APPOINTMENTS_READ)
@light_read(preload=Preload(_READ_WITH_CALLER, lambda arguments: {"appointment_id": arguments["appointment_id"]}))
def get_appointment(appointment_id: int):
    # The Caller itself: the policy and the audit read several of its fields, each a lookup through the proxy.
    user = current_user._get_current_object()
    # An API view's caller is its Bearer token's (hub.app._bearer_user), whose lookup read the row with it.
    row = appointment_row_for(db(), user, appointment_id, preloaded_row(), "read")
    return appointment_out(row, room_name=row.room_name, kit_name=row.kit_name)


def _act(appointment_id: int, verb: str, schema, perform, *, loaders=(), lock: bool = False):
    """Load the appointment the caller may act on (404 otherwise) with what the verb reads (`loaders`), then read the
    body, then run the verb. `lock`: for a verb whose workflow locks the row first (appointments.lock), the row is
    read once, locked, with the patient's consents that lock() reads."""
    loaders = (*appointments.CONSENTS_LOAD, *loaders) if lock else loaders
    appointment = appointment_for(db(), current_user, appointment_id, verb, load=loaders, lock=lock)
    data = load(schema, json_body() if request.get_data() else {})
    perform(appointment, data)
    return appointment_entity_out(appointment)


@blueprint.post("/appointments/<int:appointment_id>/confirm")
@access(Permission.VISITS_RESPOND)
def confirm_appointment(appointment_id: int):
    return _act(
        appointment_id, "confirm", _NO_BODY, lambda a, _d: appointments.confirm(db(), current_user, a), lock=True
    )


@blueprint.post("/appointments/<int:appointment_id>/decline")
@access(Permission.VISITS_RESPOND)
def decline_appointment(appointment_id: int):
    return _act(
        appointment_id,
        "decline",
        _REASON,
        lambda a, d: appointments.decline(db(), current_user, a, reason=d["reason"]),
        lock=True,
    )


def _act_on_row(appointment_id: int, verb: str, schema, perform):
    """_act for a verb run on the appointment read as plain rows (_SESSION_READ): the same 404, then the body read,
    then `perform(user, visit, consents, data)`, which returns the columns it wrote; the answer is the row with them."""
    user = current_user._get_current_object()
    rows = driver_rows(db(), _SESSION_READ, {"appointment_id": appointment_id, "cpts_id": user.cpts_id})
    visit = appointment_row_for(db(), user, appointment_id, rows[0] if rows else None, verb)
    data = load(schema, json_body() if request.get_data() else {})
    # Consent.is_valid's rule: in force until withdrawn.
    consents = [_ConsentRow(r.consent_kind, r.consent_withdrawn_at is None) for r in rows if r.consent_kind is not None]
    written = perform(user, visit, consents, data)
    shown = visit._replace(**{name: value for name, value in written.items() if name in visit._fields})
    return appointment_out(shown, room_name=visit.room_name, kit_name=visit.kit_name)


@blueprint.post("/appointments/<int:appointment_id>/check-in")
@access(Permission.VISITS_RESPOND)
@single_write  # no lock, one UPDATE with its audit row: the SAS hears of no check-in (appointments.check_in_row)
def check_in_appointment(appointment_id: int):
    return _act_on_row(
        appointment_id,
        "check_in",
        _CHECK_IN,
        lambda user, visit, consents, d: appointments.check_in_row(db(), user, visit, consents, **d),
    )


@blueprint.post("/appointments/<int:appointment_id>/checklist")
@access(Permission.VISITS_RESPOND)
@single_write  # no lock, one UPDATE with its audit row
def save_appointment_checklist(appointment_id: int):
    """The HAS pre-session checklist, complete, before the session starts."""

    def perform(user, visit, consents, items):
        minor = appointments.is_minor_on(visit.starts_at, visit.program_zone, visit.birth_date)
        return appointments.save_checklist_row(db(), user, visit, consents, minor=minor, items=items)

    return _act_on_row(appointment_id, "checklist", _CHECKLIST, perform)


@blueprint.post("/appointments/<int:appointment_id>/complete")
@access(Permission.VISITS_RESPOND)
def complete_appointment(appointment_id: int):
    """Done, after the session's start, its checklist saved before it."""
    return _act(appointment_id, "complete", _NO_BODY, lambda a, _d: completion.complete(db(), current_user, a))


@blueprint.post("/appointments/<int:appointment_id>/degrade")
@access(Permission.VISITS_RESPOND)
def degrade_appointment(appointment_id: int):
    return _act(
        appointment_id,
        "degrade",
        _REASON,
        lambda a, d: appointments.degrade(db(), current_user, a, reason=d["reason"]),
    )


@blueprint.post("/appointments/<int:appointment_id>/no-show")
@access(Permission.VISITS_RESPOND)
def record_no_show(appointment_id: int):
    return _act(appointment_id, "no_show", _NO_BODY, lambda a, _d: appointments.record_no_show(db(), current_user, a))


@blueprint.post("/appointments/<int:appointment_id>/cancel")
@access(Permission.APPOINTMENTS_BOOK)
def cancel_appointment(appointment_id: int):
    return _act(
        appointment_id,
        "cancel",
        _REASON,
        lambda a, d: appointments.cancel(db(), current_user, a, reason=d["reason"]),
        lock=True,
    )


@blueprint.post("/appointments/<int:appointment_id>/reassign")
@access(Permission.APPOINTMENTS_BOOK)
def reassign_appointment(appointment_id: int):
    def perform(appointment, data):
        idel = _professional(data["accompanying_id"])  # required by ReassignIn
        appointments.reassign(db(), current_user, appointment, idel=idel)

    return _act(appointment_id, "reassign", _REASSIGN, perform, lock=True)
