"""Login in two steps (password, then TOTP — or TOTP enrolment on first login), or through Pro Santé Connect
(e-CPS or CPS card: its substantial level stands for both factors), and logout."""

import datetime as dt
from dataclasses import dataclass

import segno
from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select

from hub.db import utcnow
from hub.http.access import PENDING_SECOND_FACTOR, PUBLIC, access
from hub.http.csrf import renew_session_id
from hub.http.forms import safe_next
from hub.http.request import db
from hub.models import User, UserSession
from hub.services import accounts, psc

bp = Blueprint("auth", __name__)

# Between the password and the code; past this the password must be typed again.
SECOND_FACTOR_DELAY = dt.timedelta(minutes=5)
BAD_CREDENTIALS = "Identifiant ou mot de passe incorrect."
THROTTLED = "Trop de tentatives de connexion. Patientez quelques minutes avant de réessayer."
BOTH_FACTORS_REFUSED = "Identifiant, mot de passe ou code incorrect. Recommencez la connexion."
BAD_CODE = "Code incorrect ou déjà utilisé. Saisissez le code à 6 chiffres affiché par votre application."
USE_PSC_INSTEAD = (
    "Votre CPTS demande à ses professionnels de se connecter par Pro Santé Connect : utilisez le bouton "
    "« Se connecter avec Pro Santé Connect » (carte CPS ou application e-CPS)."
)


def psc_settings() -> psc.PscSettings | None:
    return psc.PscSettings.from_config(current_app.config["HUB"])


@bp.app_context_processor
def psc_button():
    return {"psc_enabled": bool(current_app.config["HUB"]["PSC_ENABLED"])}


def login_limits() -> accounts.ThrottleLimits:
    config = current_app.config["HUB"]
    return accounts.ThrottleLimits(
        window=dt.timedelta(minutes=config["LOGIN_WINDOW_MINUTES"]),
        per_account_and_ip=config["LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP"],
        per_ip=config["LOGIN_MAX_FAILURES_PER_IP"],
        per_account=config["LOGIN_MAX_FAILURES_PER_ACCOUNT"],
    )


def client_ip() -> str:
    return request.remote_addr or "-"


@bp.route("/login", methods=["GET", "POST"])
@access(PUBLIC)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    if request.method == "GET":
        return render_template("auth/login.html", next=request.args.get("next", ""))
    from hub.http.csrf import check_csrf

    check_csrf()
    login = accounts.normalise_login(request.form.get("login", ""))
    result = accounts.check_password(
        db(), login=login, password=request.form.get("password", ""), ip=client_ip(), limits=login_limits()
    )
    if result.user is None and not result.verdict_withheld:  # committed with this page (hub.http.request)
        message, status = (
            (THROTTLED, 429) if result.refusal is accounts.LoginRefusal.THROTTLED else (BAD_CREDENTIALS, 401)
        )
        return render_template("auth/login.html", error=message, login=request.form.get("login", "")), status
    if result.user is not None and not result.verdict_withheld and psc.password_refused(db(), result.user):
        return _password_refused_for_psc(result.user)
    next_url = safe_next(request.form.get("next"))
    session.clear()
    renew_session_id()
    session["pending_login"] = login
    session["pending_user_id"] = result.user.id if result.user else None
    session["pending_withheld"] = result.verdict_withheld
    session["pending_at"] = utcnow().timestamp()
    session["next"] = next_url
    enrolled = result.verdict_withheld or (result.user is not None and result.user.totp_secret)
    return redirect(url_for("auth.second_factor" if enrolled else "auth.enrol"))


def enrolment_qr(uri: str) -> Markup:
    """The key of an authenticator as a QR code, for the application to scan."""
    return Markup(segno.make(uri, error="m").svg_inline(scale=4, title="QR code d'enrôlement"))  # noqa: S704 (segno's own SVG)


@dataclass(frozen=True)
class _Pending:
    """A login between its two factors. `user` is None when the password step withheld its verdict
    and the password was wrong (or the login unknown): no code can then complete it."""

    login: str
    user: User | None
    withheld: bool


def _pending() -> _Pending | None:
    """The login between the two factors, if that state is fresh and no login completed since it began.

    The pending state lives in the signed cookie; refusing it once a later session exists makes an
    old pre-login cookie useless after the login it started (S5)."""
    login, started = session.get("pending_login"), session.get("pending_at")
    if login is None or started is None:
        return None
    started_at = dt.datetime.fromtimestamp(started, dt.UTC)
    if utcnow() - started_at > SECOND_FACTOR_DELAY:
        return None
    pending = _Pending(login, None, bool(session.get("pending_withheld")))
    user_id = session.get("pending_user_id")
    if user_id is None:
        return pending
    user = db().get(User, user_id)
    if user is None or not user.is_active:
        return None
    last_login = db().scalar(select(func.max(UserSession.created_at)).where(UserSession.user_id == user.id))
    if last_login is not None and last_login >= started_at:
        return None
    return _Pending(login, user, pending.withheld)


def _password_refused_for_psc(user: User):
    accounts.record_login_failure(db(), user.login, client_ip(), factor="password_psc_required", user=user)
    return render_template("auth/login.html", error=USE_PSC_INSTEAD, login=user.login), 403


def _complete_login(user: User, *, psc_id_token: str | None = None):
    token = accounts.start_session(db(), user)
    next_url = session.get("next") or url_for("home.index")
    session.clear()
    renew_session_id()
    session["auth_token"] = token
    if psc_id_token:
        session["psc_id_token"] = psc_id_token  # the hint of the PSC logout (its claims hold no health data)
    return redirect(next_url)


def _complete_password_login(user: User):
    """Both factors were right; the CPTS may still refuse passwords to its professionals who have PSC."""
    if psc.password_refused(db(), user):
        return _password_refused_for_psc(user)
    return _complete_login(user)


def _second_factor_refused(pending: _Pending, template: str, **context):
    accounts.record_login_failure(db(), pending.login, client_ip(), factor="totp", user=pending.user)
    return render_template(template, error=BOTH_FACTORS_REFUSED if pending.withheld else BAD_CODE, **context), 401


# A GET here never ends a session (a cross-site link must not log anyone out): a logged-in user goes home,
# a stale or missing pending login back to the login page, with the cookie left as it was.


@bp.route("/login/totp", methods=["GET", "POST"])
@access(PENDING_SECOND_FACTOR)
def second_factor():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    pending = _pending()
    if pending is None or (pending.user is not None and not pending.user.totp_secret):
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/totp.html")
    if accounts.is_throttled(db(), pending.login, client_ip(), login_limits(), now=utcnow()):
        return render_template("auth/totp.html", error=THROTTLED), 429
    # With no user (withheld verdict, wrong password) no code is checked, so none is spent (S9).
    if pending.user is None or not accounts.verify_totp(db(), pending.user, request.form.get("code", "")):
        return _second_factor_refused(pending, "auth/totp.html")
    return _complete_password_login(pending.user)


@bp.route("/login/enrol", methods=["GET", "POST"])
@access(PENDING_SECOND_FACTOR)
def enrol():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    pending = _pending()
    if pending is None or pending.user is None or pending.user.totp_secret:
        return redirect(url_for("auth.login"))
    user = pending.user
    secret = session.get("enrol_secret") or accounts.new_totp_secret()
    session["enrol_secret"] = secret
    uri = accounts.totp_provisioning_uri(user, secret)
    context = {"secret": secret, "qr": enrolment_qr(uri), "uri": uri}
    if request.method == "GET":
        return render_template("auth/enrol.html", **context)
    if accounts.is_throttled(db(), user.login, client_ip(), login_limits(), now=utcnow()):
        return render_template("auth/enrol.html", error=THROTTLED, **context), 429
    if not accounts.enrol_totp(db(), user, secret, request.form.get("code", "")):
        return _second_factor_refused(pending, "auth/enrol.html", **context)
    return _complete_password_login(user)


@bp.route("/logout", methods=["POST"])
@access(PUBLIC)
def logout():
    from hub.http.csrf import check_csrf

    check_csrf()
    token, id_token = session.get("auth_token"), session.get("psc_id_token")
    if token:
        accounts.end_session(db(), token, reason="logout")
    session.clear()
    settings = psc_settings()
    # A login through PSC ends at PSC too, which then brings the browser back to the login page.
    end_url = psc.end_session_url(settings, id_token) if settings and id_token else None
    return redirect(end_url or url_for("auth.login"))


# --- Pro Santé Connect ----------------------------------------------------------------------------------------


def _psc_refused(refusal: psc.PscRefused):
    status = {"disabled": 404, "unreachable": 503}.get(refusal.reason, 401)
    return render_template("auth/login.html", error=refusal.message), status


@bp.get("/login/psc")
@access(PUBLIC)
def psc_start():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    settings = psc_settings()
    if settings is None:
        return _psc_refused(psc.PscRefused("disabled"))
    try:
        url, flow = psc.begin(db(), settings)
    except psc.PscRefused as refusal:
        return _psc_refused(refusal)
    next_url = safe_next(request.args.get("next"))
    session.clear()
    session["psc_flow"] = flow.as_dict()
    session["next"] = next_url
    return redirect(url)


# The provider brings the browser back here with a GET; the state, bound to this browser's session and used
# once, stands for the CSRF token.
@bp.get("/login/psc/callback")
@access(PUBLIC)
def psc_callback():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    settings = psc_settings()
    if settings is None:
        return _psc_refused(psc.PscRefused("disabled"))
    flow = psc.PendingFlow.from_dict(session.pop("psc_flow", None))
    try:
        login = psc.finish(db(), settings, flow, params=request.args.to_dict())
    except psc.PscRefused as refusal:
        return _psc_refused(refusal)
    return _complete_login(login.user, psc_id_token=login.id_token)
