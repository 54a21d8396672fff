"""The searches behind the FHIR read API (/fhir/, hub.api.fhir): each filters in SQL with the caller's visibility
clause, counts the matches, and loads one page with what the mappers (hub.services.fhir) read, in a fixed number
of statements whatever the page size (no N+1). Each returns (resources as dicts, total)."""

import datetime as dt

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from hub.models import (
    Appointment,
    Consent,
    IdentityStatus,
    Organisation,
    Patient,
    Professional,
    SessionProgram,
    Slot,
    SlotState,
    TeleexpertiseRequest,
)
from hub.services import fhir
from hub.services.fhir import SearchError
from scheduling.slots import has_seat_left


def _page(session: Session, query, order, offset: int, count: int, *options) -> tuple[list, int]:
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.scalars(query.options(*options).order_by(*order).limit(count).offset(offset)).unique()
    return list(rows), total


def full() -> ColumnElement[bool]:
    """No seat left in the slot, its program joined: held by an appointment, or a full group session (the one rule
    of scheduling.slots)."""
    return ~has_seat_left()


def slot_is_busy(session: Session, slot: Slot) -> bool:
    query = select(full()).select_from(Slot).join(SessionProgram, Slot.program_id == SessionProgram.id)
    return bool(session.scalar(query.where(Slot.id == slot.id)))


def practitioners(session: Session, cpts_id: int, identifier: str | None, offset: int, count: int):
    query = select(Professional).where(Professional.cpts_id == cpts_id)
    if identifier:
        system, value = fhir.token(identifier)
        if system == fhir.IDNPS_SYSTEM or (system is None and len(value) == 12 and value.startswith("8")):
            rpps = value[1:]
        elif system in (None, fhir.RPPS_SYSTEM):
            rpps = value
        else:
            raise SearchError(
                f"identifier : système inconnu « {system} » (attendu {fhir.RPPS_SYSTEM} ou {fhir.IDNPS_SYSTEM})."
            )
        query = query.where(Professional.rpps == rpps)
    rows, total = _page(session, query, (Professional.last_name, Professional.id), offset, count)
    return [fhir.practitioner(row) for row in rows], total


def organizations(session: Session, cpts_id: int, identifier: str | None, offset: int, count: int):
    query = select(Organisation).where(or_(Organisation.id == cpts_id, Organisation.cpts_id == cpts_id))
    if identifier:
        system, value = fhir.token(identifier)
        if system not in (None, fhir.FINESS_SYSTEM):
            raise SearchError(f"identifier : système inconnu « {system} » (attendu {fhir.FINESS_SYSTEM}).")
        query = query.where(Organisation.finess == value)
    rows, total = _page(session, query, (Organisation.name, Organisation.id), offset, count)
    return [fhir.organization(row) for row in rows], total


def patients(session: Session, visible, identifier: str | None, offset: int, count: int):
    """Among the patients the caller may see. By INS, only qualified identities are found: an unqualified one does
    not carry its INS in what the hub shares."""
    query = select(Patient).where(visible)
    if identifier:
        system, value = fhir.token(identifier)
        if system not in (None, fhir.INS_NIR_SYSTEM, fhir.INS_NIA_SYSTEM):
            raise SearchError(f"identifier : système inconnu « {system} » (attendu l'OID de l'INS).")
        query = query.where(Patient.ins_matricule == value, Patient.identity_status == IdentityStatus.QUALIFIED)
        if system == fhir.INS_NIA_SYSTEM:
            query = query.where(Patient.ins_oid == fhir.INS_NIA_OID)
        elif system == fhir.INS_NIR_SYSTEM:
            query = query.where(or_(Patient.ins_oid.is_(None), Patient.ins_oid != fhir.INS_NIA_OID))
    rows, total = _page(session, query, (Patient.id,), offset, count)
    return [fhir.patient(row) for row in rows], total


def schedules(session: Session, cpts_id: int, actor: str | None, offset: int, count: int):
    query = select(SessionProgram).where(SessionProgram.cpts_id == cpts_id)
    if actor:
        if actor.startswith("Organization/"):
            query = query.where(SessionProgram.organisation_id == fhir.reference_id(actor, "Organization", "actor"))
        else:
            query = query.where(SessionProgram.performer_id == fhir.reference_id(actor, "Practitioner", "actor"))
    rows, total = _page(session, query, (SessionProgram.id,), offset, count, joinedload(SessionProgram.performer))
    return [fhir.schedule(row) for row in rows], total


def _slot_query(cpts_id: int, schedule: str | None, start: list[str], status: str | None):
    query = (
        select(Slot, full().label("busy"))
        .join(SessionProgram, Slot.program_id == SessionProgram.id)
        .where(SessionProgram.cpts_id == cpts_id, Slot.state == SlotState.OPEN)
    )
    if schedule:
        query = query.where(Slot.program_id == fhir.reference_id(schedule, "Schedule", "schedule"))
    bounds = fhir.date_bounds(start, "start")
    if bounds:
        query = query.where(and_(*fhir.apply_bounds(Slot.starts_at, bounds)))
    if status == "free":
        query = query.where(~full())
    elif status == "busy":
        query = query.where(full())
    elif status is not None:
        raise SearchError(f"status : valeur inconnue « {status} » (free ou busy).")
    return query


def slots(session: Session, cpts_id: int, *, schedule, start, status, offset: int, count: int):
    query = _slot_query(cpts_id, schedule, start, status)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.options(joinedload(Slot.program)).order_by(Slot.starts_at, Slot.id).limit(count).offset(offset)
    )
    return [fhir.slot(row, busy=busy) for row, busy in rows], total


def sas_slots(session: Session, cpts_id: int, *, start, offset: int, count: int, now: dt.datetime):
    """The free teleconsultation slots of the CPTS from now on, for the SAS aggregator."""
    query = _slot_query(cpts_id, None, start, "free").where(
        SessionProgram.kind.in_(fhir.TELECONSULTATION_KINDS), SessionProgram.is_active, Slot.starts_at >= now
    )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Slot.starts_at, Slot.id).limit(count).offset(offset))
    return [fhir.sas_slot(row) for row, _busy in rows], total


def appointments(session: Session, visible, *, patient, actor, date, offset: int, count: int):
    query = select(Appointment).where(visible)
    if patient:
        query = query.where(Appointment.patient_id == fhir.reference_id(patient, "Patient", "patient"))
    if actor:
        if actor.startswith("Patient/"):
            query = query.where(Appointment.patient_id == fhir.reference_id(actor, "Patient", "actor"))
        else:
            professional_id = fhir.reference_id(actor, "Practitioner", "actor")
            query = query.where(
                or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id)
            )
    bounds = fhir.date_bounds(date, "date")
    if bounds:
        query = query.where(and_(*fhir.apply_bounds(Appointment.starts_at, bounds)))
    rows, total = _page(session, query, (Appointment.starts_at, Appointment.id), offset, count)
    return [fhir.appointment(row) for row in rows], total


def service_requests(session: Session, visible, *, patient, offset: int, count: int):
    query = select(TeleexpertiseRequest).where(visible)
    if patient:
        query = query.where(TeleexpertiseRequest.patient_id == fhir.reference_id(patient, "Patient", "patient"))
    rows, total = _page(session, query, (TeleexpertiseRequest.submitted_at, TeleexpertiseRequest.id), offset, count)
    held_consents = consents_held(session, [row.consent_id for row in rows])
    return [fhir.service_request(row, consent_held=row.consent_id in held_consents) for row in rows], total


def consents_held(session: Session, consent_ids: list[int]) -> set[int]:
    """Which of these consents are recorded and not withdrawn, in one statement."""
    if not consent_ids:
        return set()
    return set(session.scalars(select(Consent.id).where(Consent.id.in_(consent_ids), Consent.withdrawn_at.is_(None))))
