"""/api/v1/me/desk: the counts of the caller's home page (workflows.desk), for a program that shows them."""

import datetime as dt

from flask import current_app
from flask_login import current_user

from hub.api import blueprint
from hub.db import utcnow
from hub.http.access import AUTHENTICATED, access, light_read
from hub.http.request import db, territory_zone
from hub.models import REFERRAL_STATE_LABELS
from hub.schemas.desk import desk_json
from hub.schemas.outbox import outbox_status
from hub.services import outbox_messages
from workflows import desk


@blueprint.get("/me/desk")
@access(AUTHENTICATED)
@light_read  # counts only, no audit row: the token's caller in one Core SELECT, no transaction (P7)
def get_desk():
    board = desk.desk_of(db(), current_user, zone=territory_zone(), now=utcnow(), with_lists=False)
    return desk_json(parts_of(board, outbox_messages.alert_after(current_app.config["HUB"])))


def parts_of(board: desk.Desk, alert_after: dt.timedelta) -> dict:
    """The desk's parts as DeskOut reads them (a part the caller's roles do not call for is None); `alert_after`:
    HUB_OUTBOX_ALERT_MINUTES, past which the send backlog is `late`."""
    return {
        "coordinator": _coordinator(board.coordinator, alert_after) if board.coordinator else None,
        "idel": _visits(board.idel) if board.idel else None,
        "pharmacist": _pharmacist(board.pharmacist) if board.pharmacist else None,
        "gp": _gp(board.gp) if board.gp else None,
        "specialist": _specialist(board.specialist) if board.specialist else None,
        "admin": _admin(board.admin, alert_after) if board.admin else None,
    }


def _coordinator(part: desk.CoordinatorDesk, alert_after: dt.timedelta) -> dict:
    return {
        "referrals_to_triage": part.referrals_to_triage,
        "urgent_referrals_to_triage": part.urgent_referrals,
        "oldest_referral_submitted_at": part.oldest_referral_at,
        "referrals_to_schedule": part.referrals_to_schedule,
        "unconfirmed_visits": part.unconfirmed,
        "oldest_unconfirmed_asked_at": part.oldest_unconfirmed_at,
        "visits_without_idel": part.without_idel,
        "late_reports": part.late_reports,
        "failed_sends": part.failed_sends,
        "patients_without_gp_waiting": part.gp_searches.waiting,
        "patients_without_gp_to_propose": part.gp_searches.to_propose,
        "sessions": [
            {
                "program_id": item.program_id,
                "program_name": item.program_name,
                "starts_at": item.starts_at,
                "slots": item.slots,
                "free_slots": item.free,
            }
            for item in part.sessions
        ],
        "freed_slots_to_offer": part.freed_slots,
        "to_reschedule_count": part.to_reschedule,
        "to_reschedule_appointment_ids": part.first_to_reschedule_ids,
        "send_backlog": outbox_status(part.send_backlog, alert_after),
    }


def _visits(part: desk.VisitsDesk) -> dict:
    return {
        "day": part.today,
        "visits_to_confirm": len(part.to_confirm),
        "today_visits": len(part.today_visits),
        "tomorrow_visits": len(part.tomorrow_visits),
        "later_visits": len(part.later_visits),
    }


def _pharmacist(part: desk.PharmacistDesk) -> dict:
    return {
        "visits": _visits(part.visits),
        "year": part.year,
        "assistances": part.assistances,
        "assistance_amount": part.assistance_amount,
    }


def _gp(part: desk.GpDesk) -> dict:
    referrals = [
        {"state": state, "state_label": REFERRAL_STATE_LABELS[state], "count": count}
        for state, count in part.referrals.items()
    ]
    return {
        "referrals": referrals,
        "reports_received_30_days": part.reports_received,
        "recent_report_ids": [report.id for report in part.recent_reports],
        "proposal_ids": [proposal.id for proposal in part.proposed_patients],
        "new_patient_capacity": part.new_patient_capacity,
    }


def _specialist(part: desk.SpecialistDesk) -> dict:
    return {
        "session_day": part.session_day,
        "session_patients": part.session_patients,
        "reports_to_sign": len(part.to_sign),
        "late_reports_to_sign": part.late_reports,
        "teleexpertise_to_answer": part.teleexpertise_to_answer,
        "next_teleexpertise_deadline": part.next_teleexpertise_deadline,
    }


def _admin(part: desk.AdminDesk, alert_after: dt.timedelta) -> dict:
    connectors = [
        {
            "channel": c.channel,
            "label": c.label,
            "setting": c.setting,
            "setting_label": desk.CONNECTOR_SETTING_LABELS[c.setting],
            "pending": c.pending,
            "failed": c.failed,
        }
        for c in part.connectors
    ]
    return {
        "active_users": part.active_users,
        "inactive_users": part.inactive_users,
        "users_without_second_factor": part.without_second_factor,
        "connectors": connectors,
        "failed_sends": part.failed_sends,
        "send_backlog": outbox_status(part.send_backlog, alert_after),
    }
