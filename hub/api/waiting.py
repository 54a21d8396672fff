"""The waiting list and the freed slots to offer (the coordination of the caller's CPTS)."""

from flask import request
from flask_login import current_user

from hub import audit
from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import access
from hub.http.request import db, upload_dir
from hub.http.waiting import add_entry
from hub.schemas.base import load
from hub.schemas.waiting import (
    FreedSlotOut,
    OfferIn,
    OfferOut,
    WaitingEntryOut,
    WaitingIn,
    WaitingListArgs,
    WaitingWithdrawIn,
)
from workflows import programs, waiting


@blueprint.get("/waiting-list")
@access(Permission.APPOINTMENTS_BOOK)
def list_waiting():
    """The patients waiting (of one program with `program_id`), the most urgent first, then who waited longest."""
    page, per_page = pagination()
    program_id = load(WaitingListArgs(), {k: v for k, v in request.args.items() if k == "program_id"})["program_id"]
    if program_id is not None:
        programs.get_program(db(), program_id, cpts_id=current_user.cpts_id)
    rows, total = waiting.waiting_list(
        db(), current_user.cpts_id, program_id=program_id, offset=(page - 1) * per_page, limit=per_page
    )
    audit.record(db(), actor=current_user, action="waiting.list", details={"program_id": program_id})
    return page_of(WaitingEntryOut(), rows, total, page, per_page)


@blueprint.post("/waiting-list")
@access(Permission.APPOINTMENTS_BOOK)
def add_waiting():
    entry = add_entry(load_json(WaitingIn()))
    return created(WaitingEntryOut().dump(entry), "api.get_waiting", entry_id=entry.id)


@blueprint.get("/waiting-list/<int:entry_id>")
@access(Permission.APPOINTMENTS_BOOK)
def get_waiting(entry_id: int):
    entry = waiting.get_entry(db(), entry_id, cpts_id=current_user.cpts_id, action="read")
    audit.record(db(), actor=current_user, action="waiting.read", target=entry, cpts_id=entry.cpts_id)
    return WaitingEntryOut().dump(entry)


@blueprint.post("/waiting-list/<int:entry_id>/withdraw")
@access(Permission.APPOINTMENTS_BOOK)
def withdraw_waiting(entry_id: int):
    entry = waiting.get_entry(db(), entry_id, cpts_id=current_user.cpts_id, action="withdraw")
    waiting.withdraw(db(), current_user, entry, reason=load_json(WaitingWithdrawIn())["reason"])
    return WaitingEntryOut().dump(entry)


@blueprint.get("/freed-slots")
@access(Permission.APPOINTMENTS_BOOK)
def list_freed_slots():
    """The freed slots still to offer, the soonest first, each with the waiting patients it fits first."""
    page, per_page = pagination()
    now = utcnow()
    tasks = waiting.open_tasks(db(), current_user.cpts_id, now=now, offset=(page - 1) * per_page, limit=per_page)
    audit.record(db(), actor=current_user, action="freed_slot.list")
    return page_of(FreedSlotOut(), tasks, waiting.open_task_count(db(), current_user.cpts_id, now=now), page, per_page)


@blueprint.post("/freed-slots/<int:task_id>/offer")
@access(Permission.APPOINTMENTS_BOOK)
def offer_freed_slot(task_id: int):
    """Book the waiting patient into the slot: 409 when another coordinator was first, 422 when the booking's
    rules refuse it (the reason in French); nothing changes then."""
    task = waiting.get_task(db(), task_id, cpts_id=current_user.cpts_id)
    data = load_json(OfferIn())
    entry = waiting.get_entry(db(), data["entry_id"], cpts_id=current_user.cpts_id, action="offer")
    appointment = waiting.offer(db(), current_user, task, entry, upload_dir=upload_dir())
    return OfferOut().dump({"appointment_id": appointment.id, "entry": entry})
