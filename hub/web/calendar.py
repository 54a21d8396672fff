"""The professional's iCalendar feed: the page that makes and revokes its secret link, and the feed itself."""

import functools
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.http import http_date, is_resource_modified
from werkzeug.sansio.utils import get_current_url

from hub.errors import Forbidden, NotFound
from hub.http.access import AUTHENTICATED, PUBLIC, access, light_read
from hub.http.request import db, territory_zone
from hub.models import Professional
from hub.services import calendar_feeds
from scheduling import ical

bp = Blueprint("calendar", __name__)

CONTENT_TYPE = "text/calendar; charset=utf-8"
NOT_A_PROFESSIONAL = (
    "Le lien d'agenda est réservé aux professionnels de santé : votre compte n'est lié à aucune fiche de "
    "professionnel. Demandez à l'administrateur de la CPTS de le lier à la vôtre."
)


@bp.get("/ical/<token>.ics")
@access(PUBLIC)  # the token in the URL is the credential: calendar apps cannot log in
@light_read  # two SELECTs and the audit row: no transaction held across them (hub.http.access.light_read)
def feed(token: str):
    session, zone = db(), territory_zone()
    # The UIDs' domain; an empty Host header leaves the server's name, as when there is none.
    host = _host_name(request.scheme, request.host) or request.environ["SERVER_NAME"]
    served = calendar_feeds.feed_for_token(session, token, zone=zone, salt=f"{ical.FORMAT_VERSION}:{host}")
    if served is None:
        raise NotFound("Ce lien d'agenda n'existe pas ou a été révoqué.")
    version = served.version
    headers = {
        "ETag": f'"{version.etag}"',
        "Last-Modified": http_date(version.last_modified),
        "Cache-Control": "private, no-cache",
    }
    if not is_resource_modified(request.environ, etag=version.etag, last_modified=version.last_modified):
        return Response(status=304, headers=headers)
    versions, events_of = calendar_feeds.feed_contents(session, served, uid_domain=host, zone=zone)
    name = f"Hub CPTS {calendar_feeds.DASH} {served.calendar_name}"
    # The same appointment renders differently in its performer's feed and its accompanying IDEL's (her window,
    # her status after a decline): the professional is part of what a rendered event depends on.
    context = (host, served.professional_id)
    body = ical.build_cached_feed(versions, events_of, context=context, zone=zone, calendar_name=name)
    calendar_feeds.record_fetch(session, served, events=len(versions))
    return Response(body, headers=headers, content_type=CONTENT_TYPE)


@functools.lru_cache(maxsize=64)  # bounded: the Host header is the client's
def _host_name(scheme: str, host: str) -> str | None:
    """The host name of `request.host_url` (Werkzeug's IRI of it: Punycode decoded, port dropped), worked out once per
    scheme and Host header rather than at every GET, where it cost 2 % of the feed's CPU."""
    return urlsplit(get_current_url(scheme, host)).hostname


@bp.get("/me/calendar")
@access(AUTHENTICATED)
def settings():
    return _page()


@bp.post("/me/calendar")
@access(AUTHENTICATED)
def create():
    professional = _own_professional()
    show_initials = request.form.get("show_patient_initials") in ("true", "on")
    _feed, raw = calendar_feeds.create_feed(db(), current_user, professional, show_patient_initials=show_initials)
    # The secret exists only in this response: rendered here, never put in a flash cookie or a log.
    return _page(new_url=url_for("calendar.feed", token=raw, _external=True), status=201)


@bp.post("/me/calendar/revoke")
@access(AUTHENTICATED)
def revoke():
    professional = _own_professional()
    active = calendar_feeds.active_feed(db(), professional.id)
    if active is not None:
        calendar_feeds.revoke_feed(db(), current_user, active)
        flash("Lien d'agenda révoqué : les calendriers abonnés ne reçoivent plus vos rendez-vous.", "success")
    return redirect(url_for("calendar.settings"))


def _own_professional() -> Professional:
    if current_user.professional_id is None:
        raise Forbidden(NOT_A_PROFESSIONAL)
    return current_user.professional


def _page(*, new_url: str | None = None, status: int = 200):
    professional = current_user.professional
    active = calendar_feeds.active_feed(db(), professional.id) if professional else None
    context = {"professional": professional, "feed": active, "new_url": new_url, "explanation": NOT_A_PROFESSIONAL}
    webcal_url = "webcal://" + new_url.split("://", 1)[1] if new_url else None
    return render_template("calendar/settings.html", webcal_url=webcal_url, **context), status
