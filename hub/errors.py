"""The hub's error tree. Domain code raises these; the web layer renders them as a French page or as
application/problem+json (RFC 9457). Messages are French: they are shown to users as they are.

And how an unexpected failure is written to the log (`describe_failure`): without what it was given."""

import traceback

from sqlalchemy.exc import DBAPIError


class HubError(Exception):
    status = 400
    title = "Requête invalide"
    type_slug = "bad-request"
    retry_after: int | None = None  # seconds: the answer's Retry-After, for a refusal that time lifts

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, str] | None = None,
        audit_action: str | None = None,
        audit_target=None,
        **extra,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or {}
        self.extra = extra
        # A refusal that the audit log must keep even though the request's changes are rolled back.
        self.audit_action = audit_action
        self.audit_target = audit_target


class ValidationFailed(HubError):
    status = 422
    title = "Données invalides"
    type_slug = "validation"

    def __init__(self, errors: dict[str, str], detail: str | None = None):
        super().__init__(detail or "Certaines données sont invalides : corrigez les champs signalés.", errors=errors)


class NotFound(HubError):
    status = 404
    title = "Introuvable"
    type_slug = "not-found"


class Forbidden(HubError):
    status = 403
    title = "Accès refusé"
    type_slug = "forbidden"


class Unauthorized(HubError):
    status = 401
    title = "Authentification requise"
    type_slug = "unauthorized"


class Conflict(HubError):
    status = 409
    title = "Conflit"
    type_slug = "conflict"


class InvalidTransition(Conflict):
    title = "Transition impossible"
    type_slug = "invalid-transition"


class DocumentPending(Conflict):
    """A signed report's PDF asked before the worker has rendered it (a few seconds after the signature)."""

    title = "Document en préparation"
    type_slug = "document-pending"
    retry_after = 5

    def __init__(self, *, failed_retried_in: int | None = None, waits_for_version: int | None = None):
        """`failed_retried_in`: its rendering (or, with `waits_for_version`, that earlier version's) failed, the worker
        tries again in about that many seconds. `waits_for_version`: a correction rendered only after that version
        (R7), which is still to render."""
        if waits_for_version is not None:
            waiting = f"Le document est en attente de la mise en forme de la version {waits_for_version}"
            if failed_retried_in is None:
                super().__init__(f"{waiting} : il sera téléchargeable ensuite.")
                return
            super().__init__(
                f"{waiting}, dont la mise en forme échoue : la coordination est prévenue, une nouvelle tentative a lieu"
                " automatiquement."
            )
        elif failed_retried_in is None:
            super().__init__("Le document est en préparation : il sera téléchargeable dans quelques secondes.")
            return
        else:
            super().__init__(
                "La mise en forme du document a échoué, la coordination est prévenue : une nouvelle tentative a lieu"
                " automatiquement."
            )
        self.retry_after = failed_retried_in


class TooManyRequests(HubError):
    status = 429
    title = "Trop de tentatives"
    type_slug = "too-many-requests"


class RuleViolation(HubError):
    status = 422
    title = "Règle non respectée"
    type_slug = "rule-violation"


def describe_failure(exc: BaseException) -> str:
    """What failed and where, for the log, without what it was working on: an exception's message may quote it
    (a database's DETAIL repeats the failing row: a patient's address, a referral's reason). So: each
    exception of the chain by its type, a database error by its SQLSTATE, constraint and statement (its
    parameters never shown, hub.db.make_engine), and the frames of the traceback — never a message."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines.append(failure_kind(current))
        lines.extend(line.rstrip() for line in traceback.format_tb(current.__traceback__))
        current = current.__cause__ or current.__context__
    return "\n".join(lines)


def failure_kind(exc: BaseException) -> str:
    """One exception by its type (a database error with its SQLSTATE, constraint and statement), never its message."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if not isinstance(exc, DBAPIError):
        return kind
    diag = getattr(exc.orig, "diag", None)
    facts = {
        "driver error": type(exc.orig).__qualname__,
        "sqlstate": getattr(exc.orig, "sqlstate", None),
        "constraint": getattr(diag, "constraint_name", None),
        "statement": " ".join(str(exc.statement or "").split()),
    }
    return kind + "".join(f"\n  {name}: {value}" for name, value in facts.items() if value)
