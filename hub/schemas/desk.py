"""The desk as the API shows it (GET /api/v1/me/desk): the counts of the home page, never a patient."""

import datetime as dt
import enum
from decimal import Decimal

from marshmallow import Schema, fields

from hub.models import ReferralState
from hub.schemas.outbox import OutboxStatusOut


class SessionLoadOut(Schema):
    program_id = fields.Integer()
    program_name = fields.String()
    starts_at = fields.AwareDateTime()
    slots = fields.Integer()
    free_slots = fields.Integer()


class CoordinatorDeskOut(Schema):
    referrals_to_triage = fields.Integer()
    urgent_referrals_to_triage = fields.Integer()
    oldest_referral_submitted_at = fields.AwareDateTime(allow_none=True)
    referrals_to_schedule = fields.Integer()
    unconfirmed_visits = fields.Integer()
    oldest_unconfirmed_asked_at = fields.AwareDateTime(allow_none=True)
    visits_without_idel = fields.Integer()
    late_reports = fields.Integer()
    failed_sends = fields.Integer()
    sessions = fields.List(fields.Nested(SessionLoadOut))
    freed_slots_to_offer = fields.Integer()  # GET /api/v1/freed-slots lists them
    patients_without_gp_waiting = fields.Integer()
    patients_without_gp_to_propose = fields.Integer()
    to_reschedule_count = fields.Integer()  # « À reprogrammer »: GET /appointments/<id> for each of the first
    to_reschedule_appointment_ids = fields.List(fields.Integer())
    # « Envois en retard » when `late`: the worker's backlog, as GET /api/v1/outbox/status gives it.
    send_backlog = fields.Nested(OutboxStatusOut)


class VisitsDeskOut(Schema):
    day = fields.Date()
    visits_to_confirm = fields.Integer()
    today_visits = fields.Integer()
    tomorrow_visits = fields.Integer()
    later_visits = fields.Integer()


class PharmacistDeskOut(Schema):
    visits = fields.Nested(VisitsDeskOut)
    year = fields.Integer()
    assistances = fields.Integer()
    assistance_amount = fields.Decimal(as_string=True)


class ReferralCountOut(Schema):
    state = fields.Enum(ReferralState, by_value=True)
    state_label = fields.String()
    count = fields.Integer()


class GpDeskOut(Schema):
    referrals = fields.List(fields.Nested(ReferralCountOut))
    reports_received_30_days = fields.Integer()
    recent_report_ids = fields.List(fields.Integer())  # the latest received, newest first: GET /reports/<id>
    # Patients without a médecin traitant proposed to the GP: POST /patients-without-gp/proposals/<id>/accept|refuse
    proposal_ids = fields.List(fields.Integer())
    new_patient_capacity = fields.Integer()


class SpecialistDeskOut(Schema):
    session_day = fields.Date(allow_none=True)
    session_patients = fields.Integer()
    reports_to_sign = fields.Integer()
    late_reports_to_sign = fields.Integer()
    teleexpertise_to_answer = fields.Integer()
    next_teleexpertise_deadline = fields.AwareDateTime(allow_none=True)


class ConnectorStateOut(Schema):
    channel = fields.String()
    label = fields.String()
    setting = fields.String()
    setting_label = fields.String()
    pending = fields.Integer()
    failed = fields.Integer()


class AdminDeskOut(Schema):
    active_users = fields.Integer()
    inactive_users = fields.Integer()
    users_without_second_factor = fields.Integer()
    connectors = fields.List(fields.Nested(ConnectorStateOut))
    failed_sends = fields.Integer()
    send_backlog = fields.Nested(OutboxStatusOut)  # as in the coordinator's part


class DeskOut(Schema):
    """The parts of the caller's desk; a part their roles do not call for is null."""

    coordinator = fields.Nested(CoordinatorDeskOut, allow_none=True)
    idel = fields.Nested(VisitsDeskOut, allow_none=True)
    pharmacist = fields.Nested(PharmacistDeskOut, allow_none=True)
    gp = fields.Nested(GpDeskOut, allow_none=True)
    specialist = fields.Nested(SpecialistDeskOut, allow_none=True)
    admin = fields.Nested(AdminDeskOut, allow_none=True)


def desk_json(parts) -> dict:
    """The desk's parts (hub.api.desk.parts_of) as DeskOut dumps them (DeskOut stays the documented schema; a test
    compares the two for every part), converted by hand: building DeskOut and its nested schemas, then dumping
    through them, cost a fifth of the request for some thirty plain values (P7)."""
    return _json(parts)


def _json(value):
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, dt.date):  # a datetime (AwareDateTime, ISO 8601 with its offset) or a date
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")  # fields.Decimal(as_string=True)
    return value
