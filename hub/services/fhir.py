"""FHIR R4 views of the hub's records, in the shapes of FR Core and the ANS "Gestion d'agendas partagés"
and "Service d'accès aux soins" (SAS) guides. Read-only: plain functions from rows to JSON-ready dicts, and the
searches behind /fhir/ (hub.api.fhir), each over a session and the caller's visibility clause.

Choices, documented here because they are not obvious from the guides:
- Practitioner carries both FR Core identifier slices: `idNatPs` (system urn:oid:1.2.250.1.71.4.2.1, the RPPS
  prefixed by 8, type IDNPS) and `rpps` (system https://rpps.esante.gouv.fr, type RPPS). A search by identifier
  accepts either system.
- Patient carries the INS (NIR urn:oid:1.2.250.1.213.1.4.8, NIA …4.9, types INS-NIR / INS-NIA) ONLY when the
  identity is qualified (QUAL): the RNIV forbids sharing an unqualified INS. The identity status (PROV, VALI,
  RECUP, QUAL) is the FR Core identity-reliability extension, code system fr-core-cs-v2-0445.
- Schedule is a session program; its actors are the performer (Practitioner) and, when known, its organisation.
- Slot status is `busy` when it has no seat left (scheduling.slots.has_seat_left: an appointment holds a single-seat
  slot, or a group session is full), `free` otherwise.
- Appointment: each participant has its own status: the patient and the performer `accepted`; the accompanying
  IDEL `needs-action` until she confirmed, then `accepted` (`declined` when she declined).
- ServiceRequest (téléexpertise): submitted/assigned/in progress → `active` (the hub's finer state in
  `statusReason`), answered/closed → `completed`, declined/expired → `revoked`. The patient's consent is the
  extension PATIENT_CONSENT_URL (valueBoolean: the consent the request rests on is held and not withdrawn),
  since the hub serves no Consent resource to point to from `supportingInfo`.
- SAS export: the free slots of the CPTS's teleconsultation programs, each with the security label TRE_R314 `CPTS`,
  the service type v3-ActCode `VR` (virtual: teleconsultation) and the CPTS category TRE_R66 604, appointment type
  v2-0276 ROUTINE, and a Schedule → Practitioner/Organization reference.
"""

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement

from hub.models import (
    ORGANISATION_KIND_LABELS,
    Appointment,
    AppointmentKind,
    AppointmentState,
    IdentityStatus,
    Organisation,
    OrganisationKind,
    Patient,
    Profession,
    Professional,
    ProgramKind,
    SessionProgram,
    Sex,
    Slot,
    TeleexpertiseRequest,
    TeleexpertiseState,
)

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
FINESS_SYSTEM = "http://finess.sante.gouv.fr"
INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA_SYSTEM = "urn:oid:1.2.250.1.213.1.4.9"
FR_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
IDENTITY_RELIABILITY_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
IDENTITY_RELIABILITY_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
PROFESSION_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
APPOINTMENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0276"
SLOT_TYPE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R314-TypeCreneau/FHIR/TRE-R314-TypeCreneau"
FACILITY_CATEGORY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement"
)
LOINC_SYSTEM = "http://loinc.org"
TELEEXPERTISE_LOINC = "75496-0"
# The hub's own extensions (no national one carries these): the téléexpertise's finer state, the consent flag.
HUB_STATE_SYSTEM = "https://cpts-hub.fr/fhir/CodeSystem/teleexpertise-state"
HUB_STATE_URL = "https://cpts-hub.fr/fhir/StructureDefinition/teleexpertise-state"
PATIENT_CONSENT_URL = "https://cpts-hub.fr/fhir/StructureDefinition/patient-consent"
# The SAS's identifier system for the bookings it made (an appointment's `external_id`).
SAS_BOOKING_SYSTEM = "https://sas.sante.fr/rendez-vous"
# The OID a patient's `ins_oid` holds for an NIA (a temporary number); anything else is a NIR.
INS_NIA_OID = "1.2.250.1.213.1.4.9"

# The RPPS professions of TRE_G15; a coordinator is no health profession and gets no qualification.
PROFESSION_CODES = {
    Profession.GENERAL_PRACTITIONER: ("10", "Médecin"),
    Profession.SPECIALIST: ("10", "Médecin"),
    Profession.PHARMACIST: ("21", "Pharmacien"),
    Profession.MIDWIFE: ("50", "Sage-Femme"),
    Profession.NURSE: ("60", "Infirmier"),
    Profession.PHYSIOTHERAPIST: ("70", "Masseur-Kinésithérapeute"),
    Profession.SPEECH_THERAPIST: ("91", "Orthophoniste"),
    Profession.ORTHOPTIST: ("92", "Orthoptiste"),
}
GENDERS = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.INDETERMINATE: "unknown"}
APPOINTMENT_STATUSES = {
    AppointmentState.PROPOSED: "pending",  # booked on the slot, the accompanying IDEL has not confirmed yet
    AppointmentState.CONFIRMED: "booked",
    AppointmentState.CHECKED_IN: "checked-in",
    AppointmentState.DONE: "fulfilled",
    AppointmentState.DEGRADED: "fulfilled",  # it happened, by phone
    AppointmentState.DECLINED: "pending",  # the IDEL declined: the coordination looks for another
    AppointmentState.CANCELLED: "cancelled",
    AppointmentState.NO_SHOW: "noshow",
    # The performer was absent (workflows.attendance): this booking will not take place; another is booked.
    AppointmentState.POSTPONED: "cancelled",
}
# The accompanying IDEL has accepted once the session is confirmed, and everything after it.
IDEL_ACCEPTED = frozenset(
    {
        AppointmentState.CONFIRMED,
        AppointmentState.CHECKED_IN,
        AppointmentState.DONE,
        AppointmentState.DEGRADED,
        AppointmentState.POSTPONED,
    }
)
SERVICE_REQUEST_STATUSES = {
    TeleexpertiseState.SUBMITTED: "active",
    TeleexpertiseState.ASSIGNED: "active",
    TeleexpertiseState.IN_PROGRESS: "active",
    TeleexpertiseState.ANSWERED: "completed",
    TeleexpertiseState.CLOSED: "completed",
    TeleexpertiseState.DECLINED: "revoked",
    TeleexpertiseState.EXPIRED: "revoked",
}
# What an appointment of each kind is, as v3-ActCode: VR (virtual) for the remote ones, AMB in person.
APPOINTMENT_SERVICE = {
    AppointmentKind.ASSISTED_TELECONSULTATION: ("VR", "Téléconsultation assistée"),
    AppointmentKind.TELESOIN: ("VR", "Télésoin"),
    AppointmentKind.IN_PERSON: ("AMB", "Consultation en présentiel"),
}
TELECONSULTATION_KINDS = (ProgramKind.ASSISTED_TELECONSULTATION, ProgramKind.PHARMACY_TELECONSULTATION)


class SearchError(ValueError):
    """A search parameter the hub cannot read: the view answers 400 with an OperationOutcome."""


def instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def reference(kind: str, row_id: int, display: str | None = None) -> dict:
    return {"reference": f"{kind}/{row_id}", **({"display": display} if display else {})}


def _coding(system: str, code: str, display: str | None = None) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _identifier_type(code: str) -> dict:
    return {"coding": [_coding(FR_V2_0203, code)]}


def _full_name(professional: Professional) -> str:
    return f"{professional.first_name} {professional.last_name}"


# --- resources ----------------------------------------------------------------------------------------------


def practitioner(professional: Professional) -> dict:
    resource: dict = {
        "resourceType": "Practitioner",
        "id": str(professional.id),
        "active": professional.is_active,
        "name": [{"use": "usual", "family": professional.last_name, "given": [professional.first_name]}],
    }
    if professional.rpps:
        resource["identifier"] = [
            {
                "use": "official",
                "type": _identifier_type("IDNPS"),
                "system": IDNPS_SYSTEM,
                "value": f"8{professional.rpps}",
            },
            {"use": "official", "type": _identifier_type("RPPS"), "system": RPPS_SYSTEM, "value": professional.rpps},
        ]
    telecom = []
    if professional.phone:
        telecom.append({"system": "phone", "value": professional.phone, "use": "work"})
    if professional.mssante_address:
        telecom.append({"system": "email", "value": professional.mssante_address, "use": "work"})
    if telecom:
        resource["telecom"] = telecom
    if professional.profession in PROFESSION_CODES:
        code, display = PROFESSION_CODES[professional.profession]
        resource["qualification"] = [{"code": {"coding": [_coding(PROFESSION_SYSTEM, code, display)]}}]
    return resource


def organization(organisation: Organisation) -> dict:
    resource: dict = {
        "resourceType": "Organization",
        "id": str(organisation.id),
        "active": True,
        "name": organisation.name,
        "type": [{"text": ORGANISATION_KIND_LABELS[organisation.kind]}],
    }
    if organisation.finess:
        resource["identifier"] = [
            {
                "use": "official",
                "type": _identifier_type("FINEG"),
                "system": FINESS_SYSTEM,
                "value": organisation.finess,
            }
        ]
    if organisation.cpts_id is not None and organisation.kind is not OrganisationKind.CPTS:
        resource["partOf"] = reference("Organization", organisation.cpts_id)
    return resource


def patient(row: Patient) -> dict:
    """The INS only for a qualified identity; the identity status always (FR Core identity reliability)."""
    given = (row.birth_given_names or row.first_birth_given_name).split()
    names: list[dict] = [{"use": "official", "family": row.birth_name, "given": given}]
    if row.used_last_name or row.used_first_name:
        names.append(
            {
                "use": "usual",
                "family": row.used_last_name or row.birth_name,
                "given": [row.used_first_name or row.first_birth_given_name],
            }
        )
    resource: dict = {
        "resourceType": "Patient",
        "id": str(row.id),
        "extension": [
            {
                "url": IDENTITY_RELIABILITY_URL,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": _coding(IDENTITY_RELIABILITY_SYSTEM, row.identity_status.value),
                    }
                ],
            }
        ],
        "name": names,
        "gender": GENDERS[row.sex],
        "birthDate": row.birth_date.isoformat(),
    }
    ins = ins_identifier(row)
    if ins is not None:
        resource["identifier"] = [ins]
    if row.phone:
        resource["telecom"] = [{"system": "phone", "value": row.phone}]
    if row.attending_gp_id is not None:
        resource["generalPractitioner"] = [reference("Practitioner", row.attending_gp_id)]
    resource["managingOrganization"] = reference("Organization", row.cpts_id)
    return resource


def ins_identifier(row: Patient) -> dict | None:
    if row.identity_status is not IdentityStatus.QUALIFIED or not row.ins_matricule:
        return None
    nia = row.ins_oid == INS_NIA_OID
    return {
        "use": "official",
        "type": _identifier_type("INS-NIA" if nia else "INS-NIR"),
        "system": INS_NIA_SYSTEM if nia else INS_NIR_SYSTEM,
        "value": row.ins_matricule,
    }


def schedule(program: SessionProgram) -> dict:
    actors = [reference("Practitioner", program.performer_id, _full_name(program.performer))]
    if program.organisation_id is not None:
        actors.append(reference("Organization", program.organisation_id))
    period: dict = {"start": program.valid_from.isoformat()}
    if program.valid_until is not None:
        period["end"] = program.valid_until.isoformat()
    return {
        "resourceType": "Schedule",
        "id": str(program.id),
        "active": program.is_active,
        "serviceType": [_program_service(program)],
        "actor": actors,
        "planningHorizon": period,
        "comment": program.name,
    }


def _program_service(program: SessionProgram) -> dict:
    return {"coding": [_coding(ACT_CODE_SYSTEM, "VR", "virtual")], "text": program.kind.value}


def slot(row: Slot, *, busy: bool) -> dict:
    return {
        "resourceType": "Slot",
        "id": str(row.id),
        "serviceType": [_program_service(row.program)],
        "schedule": reference("Schedule", row.program_id),
        "status": "busy" if busy else "free",
        "start": instant(row.starts_at),
        "end": instant(row.ends_at),
    }


def sas_slot(row: Slot) -> dict:
    """A free teleconsultation slot in the SAS aggregator's CPTS shape (FrSlotAgregateurCPTS)."""
    return {
        "resourceType": "Slot",
        "id": str(row.id),
        "meta": {"security": [_coding(SLOT_TYPE_SYSTEM, "CPTS", "Créneau accessible par les CPTS")]},
        "serviceType": [
            {"coding": [_coding(ACT_CODE_SYSTEM, "VR", "virtual")], "text": "Téléconsultation"},
            {"coding": [_coding(FACILITY_CATEGORY_SYSTEM, "604", "CPTS")]},
        ],
        "appointmentType": {"coding": [_coding(APPOINTMENT_TYPE_SYSTEM, "ROUTINE")]},
        "schedule": reference("Schedule", row.program_id),
        "status": "free",
        "start": instant(row.starts_at),
        "end": instant(row.ends_at),
    }


def appointment(row: Appointment) -> dict:
    code, display = APPOINTMENT_SERVICE[row.kind]
    participants = [
        {"actor": reference("Patient", row.patient_id), "required": "required", "status": "accepted"},
        {
            "type": [{"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF")]}],
            "actor": reference("Practitioner", row.performer_id),
            "required": "required",
            "status": "accepted",
        },
    ]
    if row.accompanying_id is not None:
        if row.state in IDEL_ACCEPTED:
            status = "accepted"
        elif row.state is AppointmentState.DECLINED:
            status = "declined"
        else:
            status = "needs-action"
        participants.append(
            {
                "type": [{"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "SPRF")]}],
                "actor": reference("Practitioner", row.accompanying_id),
                "required": "required",
                "status": status,
            }
        )
    resource: dict = {
        "resourceType": "Appointment",
        "id": str(row.id),
        "status": APPOINTMENT_STATUSES[row.state],
        "serviceType": [{"coding": [_coding(ACT_CODE_SYSTEM, code)], "text": display}],
        "start": instant(row.starts_at),
        "end": instant(row.ends_at),
        "created": instant(row.created_at),
        "participant": participants,
    }
    if row.external_id is not None:
        resource["identifier"] = [{"system": SAS_BOOKING_SYSTEM, "value": row.external_id}]
    if row.slot_id is not None:
        resource["slot"] = [reference("Slot", row.slot_id)]
    if row.state is AppointmentState.CANCELLED and row.cancel_reason:
        resource["cancelationReason"] = {"text": row.cancel_reason}
    return resource


def service_request(row: TeleexpertiseRequest, *, consent_held: bool) -> dict:
    """`consent_held`: the consent the request rests on is recorded and not withdrawn."""
    resource: dict = {
        "resourceType": "ServiceRequest",
        "id": str(row.id),
        "extension": [{"url": PATIENT_CONSENT_URL, "valueBoolean": consent_held}],
        "status": SERVICE_REQUEST_STATUSES[row.state],
        "intent": "order",
        "code": {
            "coding": [_coding(LOINC_SYSTEM, TELEEXPERTISE_LOINC, "Demande d'acte de télémédecine")],
            "text": "Téléexpertise",
        },
        "subject": reference("Patient", row.patient_id),
        "authoredOn": instant(row.submitted_at),
        "requester": reference("Practitioner", row.requester_id),
        "occurrencePeriod": {"start": instant(row.submitted_at), "end": instant(row.deadline_at)},
        "note": [{"text": row.question}],
    }
    if row.expert_id is not None:
        resource["performer"] = [reference("Practitioner", row.expert_id)]
    elif row.specialty:
        resource["performerType"] = {"text": row.specialty}
    if row.state in (TeleexpertiseState.SUBMITTED, TeleexpertiseState.ASSIGNED, TeleexpertiseState.IN_PROGRESS):
        # FHIR's `active` covers three of the hub's states: the finer one says who acts next.
        resource["extension"].append({"url": HUB_STATE_URL, "valueCoding": _coding(HUB_STATE_SYSTEM, row.state.value)})
    return resource


def operation_outcome(status: int, detail: str) -> dict:
    code = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 422: "processing"}.get(
        status, "exception"
    )
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error" if status < 500 else "fatal", "code": code, "diagnostics": detail}],
    }


def searchset(resources: Iterable[dict], total: int, links: dict[str, str]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
        "entry": [
            {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources
        ],
    }


# --- search parameters --------------------------------------------------------------------------------------

_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def date_bounds(values: list[str], name: str) -> list[tuple[str, dt.datetime]]:
    """`ge2026-12-07`, `lt2026-12-08T12:00:00+01:00`… as (operator, UTC instant) pairs. A bare date is the UTC
    day: `eq` covers it whole, `gt` starts after it, `le` ends with it (FHIR's ranges of a partial date)."""
    bounds: list[tuple[str, dt.datetime]] = []
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2] in _PREFIXES else ("eq", value)
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                first = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
                after = first + dt.timedelta(days=1)
                bounds.extend(
                    {
                        "eq": [("ge", first), ("lt", after)],
                        "ge": [("ge", first)],
                        "gt": [("ge", after)],
                        "le": [("lt", after)],
                        "lt": [("lt", first)],
                    }[prefix]
                )
                continue
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise SearchError(f"{name} : date invalide « {value} ».") from None
        if moment.tzinfo is None:
            raise SearchError(f"{name} : une date avec heure doit porter son fuseau (« {value} »).")
        bounds.append((prefix, moment.astimezone(dt.UTC)))
    return bounds


def apply_bounds(column, bounds: list[tuple[str, dt.datetime]]) -> list[ColumnElement[bool]]:
    compare = {
        "eq": lambda moment: column == moment,
        "ge": lambda moment: column >= moment,
        "gt": lambda moment: column > moment,
        "le": lambda moment: column <= moment,
        "lt": lambda moment: column < moment,
    }
    return [compare[operator](moment) for operator, moment in bounds]


def reference_id(value: str, kind: str, name: str) -> int:
    """`Patient/12` or `12` → 12."""
    text = value.split("/", 1)[1] if value.startswith(f"{kind}/") else value
    if not text.isdigit() or len(text) > 9:
        raise SearchError(f"{name} : référence {kind} invalide « {value} ».")
    return int(text)


def token(value: str) -> tuple[str | None, str]:
    """`system|code` or `code`."""
    system, sep, code = value.partition("|")
    return (system or None, code) if sep else (None, value)
