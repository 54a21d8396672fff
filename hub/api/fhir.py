"""The FHIR R4 read API under /fhir/ (application/fhir+json), in the shapes of FR Core and the ANS "Gestion
d'agendas partagés" guide, and the SAS export (/fhir/sas/Slot).

The same Bearer tokens, permissions, care-relation checks and audit as /api/v1 (hub.http.access treats /fhir/ as
API: the token authenticates, there is no CSRF); errors are OperationOutcome resources (hub.http.errors). Views
are thin: read the parameters, authorise through hub.auth, call hub.services.fhir (mappers) or workflows.fhir
(searches). Searches page with `_count` (at most MAX_COUNT) and `_page` (1-based), and return a searchset
Bundle with `total` and self/next/previous links. An unknown search parameter is a 400, not silently ignored:
a client that filters on it would otherwise get more than it asked for."""

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from hub import audit
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import (
    appointment_for,
    teleexpertise_for,
    visible_appointments,
    visible_patients,
    visible_teleexpertise,
)
from hub.db import utcnow
from hub.errors import HubError, NotFound
from hub.http.access import PUBLIC, access, needs_account
from hub.http.request import db
from hub.models import Consent, Slot
from hub.services import directory, fhir
from workflows import fhir as searches
from workflows import programs

blueprint = Blueprint("fhir", __name__)

DEFAULT_COUNT = 50
MAX_COUNT = 200
PAGING = ("_count", "_page", "_format")


class BadSearch(HubError):
    status = 400
    title = "Paramètre de recherche invalide"
    type_slug = "bad-search"


def resource(body: dict, status: int = 200):
    response = jsonify(body)
    response.status_code = status
    response.mimetype = fhir.MEDIA_TYPE
    return response


def _args(*allowed: str) -> dict[str, list[str]]:
    unknown = sorted(set(request.args) - set(allowed) - set(PAGING))
    if unknown:
        raise BadSearch(f"Paramètre de recherche non pris en charge : {', '.join(unknown)}.")
    return {name: request.args.getlist(name) for name in allowed}


def _one(args: dict[str, list[str]], name: str) -> str | None:
    values = args[name]
    if len(values) > 1:
        raise BadSearch(f"{name} : une seule valeur attendue.")
    return values[0] if values else None


def _paging() -> tuple[int, int]:
    def positive(name: str, default: int, maximum: int) -> int:
        text = request.args.get(name)
        if text is None:
            return default
        if not text.isdigit() or not 0 < int(text) <= maximum:
            raise BadSearch(f"{name} : entier de 1 à {maximum} attendu.")
        return int(text)

    return positive("_count", DEFAULT_COUNT, MAX_COUNT), positive("_page", 1, 100_000)


def _search(run):
    """Run a search (offset, count) → (resources, total) and wrap one page of it in a searchset Bundle."""
    count, page = _paging()
    try:
        resources, total = run((page - 1) * count, count)
    except fhir.SearchError as error:
        raise BadSearch(str(error)) from None
    args = request.args.to_dict(flat=False)

    def link(to_page: int) -> str:
        return f"{request.base_url}?{urlencode(args | {'_count': [count], '_page': [to_page]}, doseq=True)}"

    links = {"self": link(page)}
    if page * count < total:
        links["next"] = link(page + 1)
    if page > 1:
        links["previous"] = link(page - 1)
    return resource(fhir.searchset(resources, total, links))


# --- the CapabilityStatement ------------------------------------------------------------------------------------

SEARCH_PARAMS = {
    "Practitioner": [("identifier", "token")],
    "Organization": [("identifier", "token")],
    "Patient": [("identifier", "token")],
    "Schedule": [("actor", "reference")],
    "Slot": [("schedule", "reference"), ("start", "date"), ("status", "token")],
    "Appointment": [("patient", "reference"), ("actor", "reference"), ("date", "date")],
    "ServiceRequest": [("patient", "reference")],
}


@blueprint.get("/metadata")
@access(PUBLIC)
def capability_statement():
    """Public, as FHIR asks: it says what the server does, nothing about anyone."""
    return resource(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": utcnow().date().isoformat(),
            "publisher": "Hub CPTS",
            "kind": "instance",
            "implementation": {
                "description": "Hub CPTS — API FHIR en lecture",
                "url": f"{request.url_root}fhir",  # the base every resource URL is relative to
            },
            "fhirVersion": fhir.FHIR_VERSION,
            "format": [fhir.MEDIA_TYPE, "json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "description": "Jeton d'accès personnel (Authorization: Bearer …), le même que pour /api/v1."
                    },
                    "resource": [
                        {
                            "type": kind,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [{"name": name, "type": kind_of} for name, kind_of in params]
                            + [{"name": "_count", "type": "number"}],
                        }
                        for kind, params in SEARCH_PARAMS.items()
                    ],
                }
            ],
        }
    )


# --- directory ----------------------------------------------------------------------------------------------


@blueprint.get("/Practitioner/<int:professional_id>")
@access(Permission.PROFESSIONALS_READ)
def read_practitioner(professional_id: int):
    return resource(fhir.practitioner(directory.get_professional(db(), current_user.cpts_id, professional_id)))


@blueprint.get("/Practitioner")
@access(Permission.PROFESSIONALS_READ)
def search_practitioners():
    args = _args("identifier")
    return _search(
        lambda offset, count: searches.practitioners(
            db(), current_user.cpts_id, _one(args, "identifier"), offset, count
        )
    )


@blueprint.get("/Organization/<int:organisation_id>")
@access(Permission.ORGANISATIONS_READ)
def read_organization(organisation_id: int):
    return resource(fhir.organization(directory.get_organisation(db(), current_user.cpts_id, organisation_id)))


@blueprint.get("/Organization")
@access(Permission.ORGANISATIONS_READ)
def search_organizations():
    args = _args("identifier")
    return _search(
        lambda offset, count: searches.organizations(
            db(), current_user.cpts_id, _one(args, "identifier"), offset, count
        )
    )


# --- patients -----------------------------------------------------------------------------------------------


@blueprint.get("/Patient/<int:patient_id>")
@access(Permission.PATIENTS_READ)
def read_patient(patient_id: int):
    return resource(fhir.patient(patient_for(db(), current_user, patient_id)))


@blueprint.get("/Patient")
@access(Permission.PATIENTS_READ)
def search_patients():
    args = _args("identifier")

    def run(offset, count):
        found = searches.patients(db(), visible_patients(current_user), _one(args, "identifier"), offset, count)
        audit.record(
            db(), actor=current_user, action="patient.search", details={"results": len(found[0]), "fhir": True}
        )
        return found

    return _search(run)


# --- agendas ------------------------------------------------------------------------------------------------


@blueprint.get("/Schedule/<int:program_id>")
@access(Permission.PROGRAMS_MANAGE)
def read_schedule(program_id: int):
    return resource(fhir.schedule(programs.get_program(db(), program_id, cpts_id=current_user.cpts_id)))


@blueprint.get("/Schedule")
@access(Permission.PROGRAMS_MANAGE)
def search_schedules():
    args = _args("actor")
    return _search(
        lambda offset, count: searches.schedules(db(), current_user.cpts_id, _one(args, "actor"), offset, count)
    )


@blueprint.get("/Slot/<int:slot_id>")
@access(Permission.PROGRAMS_MANAGE)
def read_slot(slot_id: int):
    row = db().get(Slot, slot_id)
    if row is None or row.program.cpts_id != current_user.cpts_id:
        raise NotFound("Créneau introuvable.")
    return resource(fhir.slot(row, busy=searches.slot_is_busy(db(), row)))


@blueprint.get("/Slot")
@access(Permission.PROGRAMS_MANAGE)
def search_slots():
    args = _args("schedule", "start", "status")
    return _search(
        lambda offset, count: searches.slots(
            db(),
            current_user.cpts_id,
            schedule=_one(args, "schedule"),
            start=args["start"],
            status=_one(args, "status"),
            offset=offset,
            count=count,
        )
    )


@blueprint.get("/Appointment/<int:appointment_id>")
@access(Permission.APPOINTMENTS_READ)
def read_appointment(appointment_id: int):
    return resource(fhir.appointment(appointment_for(db(), current_user, appointment_id, "read")))


@blueprint.get("/Appointment")
@access(Permission.APPOINTMENTS_READ)
def search_appointments():
    args = _args("patient", "actor", "date")

    def run(offset, count):
        found = searches.appointments(
            db(),
            visible_appointments(current_user),
            patient=_one(args, "patient"),
            actor=_one(args, "actor"),
            date=args["date"],
            offset=offset,
            count=count,
        )
        audit.record(db(), actor=current_user, action="appointment.search", details={"results": len(found[0])})
        return found

    return _search(run)


# --- téléexpertise ------------------------------------------------------------------------------------------


@blueprint.get("/ServiceRequest/<int:teleexpertise_id>")
@access(Permission.TELEEXPERTISE_READ)
@needs_account  # the teleexpertise policies read the caller's professional (hub.auth.policies)
def read_service_request(teleexpertise_id: int):
    row = teleexpertise_for(db(), current_user, teleexpertise_id, "read")
    consent = db().scalar(select(Consent).where(Consent.id == row.consent_id))
    return resource(fhir.service_request(row, consent_held=consent is not None and consent.withdrawn_at is None))


@blueprint.get("/ServiceRequest")
@access(Permission.TELEEXPERTISE_READ)
@needs_account
def search_service_requests():
    args = _args("patient")

    def run(offset, count):
        found = searches.service_requests(
            db(), visible_teleexpertise(current_user), patient=_one(args, "patient"), offset=offset, count=count
        )
        audit.record(db(), actor=current_user, action="teleexpertise.search", details={"results": len(found[0])})
        return found

    return _search(run)


# --- the SAS export -----------------------------------------------------------------------------------------


@blueprint.get("/sas/Slot")
@access(Permission.PROGRAMS_MANAGE)
def sas_slots():
    """The CPTS's free teleconsultation slots from now on, for the SAS aggregator (its token is a coordination
    account's): `start=ge…&start=lt…` narrows the window."""
    args = _args("start")
    return _search(
        lambda offset, count: searches.sas_slots(
            db(), current_user.cpts_id, start=args["start"], offset=offset, count=count, now=utcnow()
        )
    )
