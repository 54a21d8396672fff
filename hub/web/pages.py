"""Helpers shared by the pages: list filters from the query string, page size, a form submitted to a service, the
télésoin fields of the booking forms."""

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user

from hub.auth.policies import appointment_for
from hub.errors import ValidationFailed
from hub.http.forms import attempt, load_form
from hub.http.request import db
from hub.models import TELESOIN_ACT_LABELS, Appointment, Profession, TelesoinActCode
from hub.schemas.base import load
from workflows import fees

T = TypeVar("T")


def load_query(schema) -> tuple[dict, dict, dict]:
    """(filters, raw values to re-display, errors by field) from the query string; bad filters are dropped."""
    raw = request.args.to_dict()
    try:
        return load(schema, raw), raw, {}
    except ValidationFailed as exc:
        return {"page": 1}, raw, exc.errors


# The largest id a route accepts (hub.app.RowIdConverter): a marker no real address holds.
_MARKER = str(2**31 - 1)


def row_url(endpoint: str, argument: str) -> Callable[[int], str]:
    """`url_for(endpoint, argument=row_id)` for each row of a page, worked out once: the address of a marker id,
    cut around it. A week's forty rows cost forty `url_for`, a tenth of the page."""
    head, _, tail = _kept_url(endpoint, argument).partition(_MARKER)
    return lambda row_id: f"{head}{row_id}{tail}"


def fixed_url(endpoint: str) -> str:
    """`url_for(endpoint)` of an endpoint without arguments (a page's tabs and forms): the same address for the
    process's life at a given root, worked out on its first use, as the layout's links (hub.web.layout)."""
    return _kept_url(endpoint, None)


def _kept_url(endpoint: str, argument: str | None) -> str:
    # A relative address depends only on the root and the rule: no blueprint adds URL defaults.
    key = (request.script_root, endpoint, argument)
    known: dict = current_app.extensions.setdefault("hub.fixed_urls", {})
    address = known.get(key)
    if address is None:
        marker: dict[str, Any] = {} if argument is None else {argument: int(_MARKER)}
        address = known[key] = url_for(endpoint, **marker)
    return address


def page_size() -> int:
    return current_app.config["HUB"]["API_PAGE_SIZE"]


def submit(schema, perform: Callable[[dict], T], *, partial: bool = False) -> tuple[T | None, dict, dict]:
    """Load the form and hand it to `perform` (one service call): (its result, raw values, errors by field);
    with errors, the result is None.

    The form's errors and the service's ValidationFailed come back the same way, for the page to show
    next to the fields (the refused change undone); any other refusal propagates to the error pages."""
    data, values, errors = load_form(schema, partial=partial)
    result, refusal = attempt(lambda: perform(data), form_errors=errors, refusals=ValidationFailed)
    return result, values, refusal.errors if refusal is not None else {}


def appointment_action(
    appointment_id: int,
    verb: str,
    schema,
    perform: Callable[[Appointment, dict], str],
    *,
    show_again,
    done_url: str,
    read=None,
):
    """One action on an appointment from a page. Done: a French confirmation and Post/Redirect/Get.
    Refused: the change undone and `read` (the page's audit action, about the appointment) recorded, then
    `show_again(appointment, verb, values, refusal)` renders the page with the form's errors."""
    appointment = appointment_for(db(), current_user, appointment_id, verb)
    data, values, errors = load_form(schema)
    message, refusal = attempt(lambda: perform(appointment, data), form_errors=errors, read=read, target=appointment)
    if refusal is not None:
        return show_again(appointment, verb, values, refusal)
    assert message is not None  # not refused: attempt returned perform's message
    flash(message, "success")
    return redirect(done_url)


def telesoin_choices(profession: Profession, *, performer: str) -> dict | None:
    """What a booking form asks of a télésoin session performed by `performer` (a name, or who they are), of
    `profession` (None when it names no act): the acts of the profession with their usual coefficient, the last
    in-person dressing for an IDEL, the last in-person care."""
    acts = fees.TELESOIN_ACTS.get(profession)
    if acts is None:
        return None
    return {
        "act_options": [
            (code, f"{TELESOIN_ACT_LABELS[code]} (coefficient habituel {str(coefficient).replace('.', ',')})")
            for code, coefficient in acts.items()
        ],
        "never_assessments": profession in fees.ASSESSMENTS_NEVER_REMOTE,
        "asks_dressing": TelesoinActCode.REMOTE_DRESSING in acts,
        "who_knows": f"{performer} ou un·e infirmier·e de son cabinet" if profession is Profession.NURSE else performer,
        "months": fees.IN_PERSON_WITHIN_MONTHS,
    }
