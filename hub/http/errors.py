"""Errors as a French page or as application/problem+json (RFC 9457), never with a stack trace.

Every handler first discards what the failed request changed (hub.http.request: the unit of work)."""

import logging
from urllib.parse import quote

from flask import Flask, g, jsonify, redirect, render_template, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from hub import audit
from hub.errors import HubError, Unauthorized, describe_failure
from hub.http.access import is_api_request
from hub.http.request import db, discard_changes
from hub.services import fhir

log = logging.getLogger(__name__)

HTTP_TITLES = {
    400: "Requête invalide",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Page introuvable",
    405: "Méthode non autorisée",
    413: "Fichier trop volumineux",
    415: "Type de contenu non pris en charge",
    429: "Trop de tentatives",
    500: "Erreur interne",
}


def problem(status: int, title: str, detail: str, *, type_slug: str = "about:blank", **members):
    if request.path.startswith("/fhir/"):
        # The FHIR API answers its errors as FHIR does: an OperationOutcome, same status.
        response = jsonify(fhir.operation_outcome(status, detail))
        response.status_code = status
        response.mimetype = fhir.MEDIA_TYPE
        return response
    body = {
        "type": type_slug if type_slug == "about:blank" else f"/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "request_id": g.get("request_id"),
        **members,
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _record_refusal(exc: HubError, action: str) -> None:
    """The refusal's trace, written after the discarded changes: the request's commit keeps it."""
    actor = current_user if current_user.is_authenticated else None
    audit.record(db(), actor=actor, action=action, target=exc.audit_target, outcome="denied")


def handle_hub_error(exc: HubError):
    discard_changes()
    if exc.audit_action:
        _record_refusal(exc, exc.audit_action)
    if is_api_request():
        members = dict(exc.extra)
        if exc.errors:
            members["errors"] = exc.errors
        response = problem(exc.status, exc.title, exc.detail, type_slug=exc.type_slug, **members)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Unauthorized):
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=&')}")
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return render_template("error.html", title=exc.title, detail=exc.detail), exc.status, headers


def handle_http_error(exc: HTTPException):
    discard_changes()
    status = exc.code or 500
    title = HTTP_TITLES.get(status, exc.name)
    detail = {
        404: "La ressource demandée n'existe pas.",
        405: "Cette action n'est pas possible à cette adresse.",
        413: "Le contenu envoyé dépasse la taille autorisée.",
    }.get(status, title)
    # Werkzeug's own headers (`Allow` on a 405, as RFC 9110 requires) survive the French body.
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    if is_api_request():
        response = problem(status, title, detail)
        response.headers.extend(headers)
        return response
    return render_template("error.html", title=title, detail=detail), status, headers


def handle_unexpected(exc: Exception):
    try:
        discard_changes()
    except Exception as failure:  # e.g. the database connection is gone: the error page is still due
        log.error("could not discard the failed request's changes\n%s", describe_failure(failure))
    log.error("unexpected error on %s %s\n%s", request.method, request.path, describe_failure(exc))
    title, detail = (
        HTTP_TITLES[500],
        "Une erreur inattendue est survenue. Elle a été enregistrée ; réessayez.",
    )
    if is_api_request():
        return problem(500, title, detail)
    return render_template("error.html", title=title, detail=detail), 500


def register(app: Flask) -> None:
    app.register_error_handler(HubError, handle_hub_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
