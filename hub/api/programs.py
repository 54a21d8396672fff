import datetime as dt

from flask import request
from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.errors import NotFound, ValidationFailed
from hub.http.access import access, light_read
from hub.http.request import db, territory_zone
from hub.schemas.base import load
from hub.schemas.scheduling import (
    GenerationOut,
    ProgramIn,
    ProgramOut,
    ProgramSeriesIn,
    ProgramUpdateOut,
    ReasonIn,
    SeriesStopOut,
    SlotWindowArgs,
    slots_out,
)
from scheduling import board
from scheduling.agenda import day_bounds
from workflows import programs

_SLOT_WINDOW_ARGS = SlotWindowArgs()  # built once: it keeps no per-request state


@blueprint.get("/programs")
@access(Permission.PROGRAMS_MANAGE)
def list_programs():
    page, per_page = pagination()
    rows = programs.list_programs(db(), current_user.cpts_id)
    return page_of(ProgramOut(), rows[(page - 1) * per_page : page * per_page], len(rows), page, per_page)


@blueprint.post("/programs")
@access(Permission.PROGRAMS_MANAGE)
def create_program():
    data = load_json(ProgramIn())
    program = programs.create_program(db(), current_user, data, zone=territory_zone())
    return created(ProgramOut().dump(program), "api.get_program", program_id=program.id)


@blueprint.get("/programs/<int:program_id>")
@access(Permission.PROGRAMS_MANAGE)
def get_program(program_id: int):
    return ProgramOut().dump(programs.get_program(db(), program_id, cpts_id=current_user.cpts_id))


@blueprint.patch("/programs/<int:program_id>")
@access(Permission.PROGRAMS_MANAGE)
def update_program(program_id: int):
    """The whole series from now on (one occurrence and "this and the following" are page actions)."""
    program = programs.get_program(db(), program_id, cpts_id=current_user.cpts_id)
    changes = load_json(ProgramSeriesIn(), partial=True)
    if not changes:
        raise ValidationFailed({"_schema": "Aucun champ à modifier."})
    report = programs.update_series(db(), current_user, program, changes)
    return ProgramUpdateOut().dump(program) | {"slots": GenerationOut().dump(report)}


@blueprint.post("/programs/<int:program_id>/cancel")
@access(Permission.PROGRAMS_MANAGE)
def cancel_program(program_id: int):
    """Stop the series: its future slots go, their appointments are cancelled (and their people told)."""
    program = programs.get_program(db(), program_id, cpts_id=current_user.cpts_id)
    data = load_json(ReasonIn())
    cancelled = programs.cancel_series(db(), current_user, program, reason=data["reason"])
    return SeriesStopOut().dump(program) | {"appointments_cancelled": cancelled}


@blueprint.get("/programs/<int:program_id>/slots")
@access(Permission.PROGRAMS_MANAGE)
@light_read
def list_slots(program_id: int):
    """Slots starting in [from, to): dates are local days (`to` included), instants need their offset.
    By default, from now to the end of the program's horizon. A light read of the driver's rows (P7: three
    statements)."""
    program = board.program_of_slots(db(), program_id)
    if program is None or program.cpts_id != current_user.cpts_id:
        raise NotFound("Programme introuvable.")
    page, per_page = pagination()
    start, end = _window(
        program, load(_SLOT_WINDOW_ARGS, {k: v for k, v in request.args.items() if k in ("from", "to")})
    )
    slots, total = board.program_slot_page(db(), program, start, end, page=page, per_page=per_page)
    return {"items": slots_out(slots), "page": page, "per_page": per_page, "total": total}


def _window(program, args: dict) -> tuple[dt.datetime, dt.datetime]:
    start = instant(args.get("start"), program.zone, end=False) or utcnow()
    end = instant(args.get("end"), program.zone, end=True) or start + dt.timedelta(weeks=program.horizon_weeks)
    if end <= start:
        raise ValidationFailed({"to": "La fin de la période précède son début."})
    return start, end


def instant(value, zone: str, *, end: bool) -> dt.datetime | None:
    """A `from` or `to` of the query as an instant: itself with its offset, or the local day's first instant (for
    an end, the next day's: the day is included)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return day_bounds(value, zone)[1 if end else 0]
