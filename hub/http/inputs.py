"""The request-level half of the input policy (I2; the field-level half is hub.schemas.base): no NUL byte
anywhere in a request, a JSON body of bounded depth, integers of the query string within their range.

Each refusal is a HubError: a 4xx problem+json for the API, a French page for the pages."""

import json

from flask import request

from hub.errors import HubError
from hub.schemas.base import INT_MAX, MAX_PAGE

# Deeper than any body the API documents (a referral with its new patient is 2 levels, a template's steps 3).
MAX_JSON_DEPTH = 16
NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class NulByte(HubError):
    type_slug = "nul-byte"


def refuse_nul_bytes() -> None:
    """Before any view: PostgreSQL stores no NUL in text and refuses it in a query (a 500, with the statement's
    parameters in the log), and no one types one in a form; wherever it comes from — the path, the query
    string, a form field or its name, an uploaded file's name — the request is refused."""
    current = request._get_current_object()  # type: ignore[attr-defined]  # the proxy resolved once, not 6 times
    texts = [current.path]
    if _query_may_hold_nul(current.query_string):
        texts += _pairs(current.args)
    if current.environ.get("CONTENT_TYPE") and current.mimetype in FORM_TYPES:
        texts += [*_pairs(current.form), *(upload.filename or "" for upload in current.files.values())]
        texts += list(current.files.keys())
    if any(NUL in text for text in texts):
        raise NulByte("La requête contient un caractère nul : elle est refusée.")


def _query_may_hold_nul(query: bytes) -> bool:
    """Whether the decoded query string may hold a NUL: only a NUL byte or `%00` decode to one, and an ASCII query
    string (every one but a client's raw UTF-8) is decoded without error: `request.args` is parsed only when it
    may hold one, or when the view reads it."""
    return bool(query) and (not query.isascii() or b"\x00" in query or b"%00" in query)


def _pairs(multidict) -> list[str]:
    return [text for key, values in multidict.lists() for text in (key, *values)]


def json_document():
    """The request's JSON body, parsed under the policy: standard JSON only (no NaN or Infinity, no number of
    thousands of digits), nested at most MAX_JSON_DEPTH deep. Its size is bounded by MAX_CONTENT_LENGTH (413)."""
    try:
        document = json.loads(request.get_data(cache=True), parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise HubError("Le corps de la requête doit être un objet JSON valide.") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise _too_deep()
    return document


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _too_deep() -> HubError:
    return HubError(f"Le corps JSON est trop imbriqué (au plus {MAX_JSON_DEPTH} niveaux).")


def _depth_exceeds(document, limit: int) -> bool:
    """Iterative, so that a document nested deeper than Python's recursion limit is measured too."""
    level = [document]
    for _ in range(limit):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return False
    return any(isinstance(node, dict | list) and node for node in level)


def query_int(name: str, default: int, *, minimum: int = 1, maximum: int = INT_MAX) -> int:
    """An integer of the query string, refused (400) unless within [minimum, maximum]."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise HubError(f"Le paramètre {name} doit être un entier entre {minimum} et {maximum}.")
    return value


def page_number() -> int:
    """The `page` of a list page: whatever is typed, a page between 1 and MAX_PAGE (beyond the last, an empty
    page), never an error page."""
    raw = request.args.get("page", "")
    try:
        page = int(raw)
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)
