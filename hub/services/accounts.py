"""Accounts: argon2 passwords, TOTP second factor, throttled logins, server-side sessions, API tokens."""

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from hub import audit
from hub.db import driver_rows, rows_changed, utcnow
from hub.errors import NotFound, RuleViolation, ValidationFailed
from hub.models import ApiToken, LoginAttempt, Profession, Professional, Role, User, UserRole, UserSession

_log = logging.getLogger(__name__)

PASSWORD_MIN_LENGTH = 12
TOTP_ISSUER = "Hub CPTS"
TOKEN_PREFIX = "hubpat_"  # noqa: S105 (a public prefix, not a secret)
# Touching last_seen_at on every request would turn every read into a write; a minute is precise enough.
TOUCH_INTERVAL = dt.timedelta(seconds=60)

_hasher = PasswordHasher()


def configure_password_hashing(*, time_cost: int, memory_cost: int) -> None:
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)
    _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


TOO_SHORT = f"Le mot de passe doit comporter au moins {PASSWORD_MIN_LENGTH} caractères."
WRONG_CURRENT_PASSWORD = "Mot de passe actuel incorrect."  # noqa: S105 (a message, not a secret)
CONFIRMATION_DIFFERS = "Les deux saisies du nouveau mot de passe sont différentes."
SAME_PASSWORD = "Choisissez un mot de passe différent de l'actuel."  # noqa: S105 (a message, not a secret)
NEW_CODE_REFUSED = "Code incorrect : saisissez le code à 6 chiffres que la nouvelle application affiche pour cette clé."


def check_password_strength(password: str) -> None:
    if len(password or "") < PASSWORD_MIN_LENGTH:
        raise ValidationFailed({"password": TOO_SHORT})


def normalise_login(login: str) -> str:
    return (login or "").strip().lower()[:80]


def create_user(
    session: Session,
    actor,
    *,
    login: str,
    display_name: str,
    password: str,
    cpts_id: int,
    roles,
    professional_id: int | None = None,
    totp_secret: str | None = None,
) -> User:
    login = normalise_login(login)
    errors = {}
    if not login:
        errors["login"] = "L'identifiant est obligatoire."
    elif session.scalar(select(User.id).where(User.login == login)):
        errors["login"] = "Cet identifiant est déjà pris."
    if not roles:
        errors["roles"] = "Choisissez au moins un rôle."
    if professional_id is not None:
        professional = session.get(Professional, professional_id)
        if professional is None or professional.cpts_id != cpts_id:
            errors["professional_id"] = "Professionnel inconnu dans la CPTS."
        elif session.scalar(select(User.id).where(User.professional_id == professional_id)):
            errors["professional_id"] = "Ce professionnel a déjà un compte."
    if Role.PROFESSIONAL in roles and professional_id is None:
        errors["professional_id"] = "Un compte de professionnel de santé doit être lié à sa fiche."
    if errors:
        raise ValidationFailed(errors)
    check_password_strength(password)
    user = User(
        login=login,
        display_name=display_name,
        password_hash=hash_password(password),
        cpts_id=cpts_id,
        professional_id=professional_id,
        totp_secret=totp_secret,
        role_rows=[UserRole(role=Role(r)) for r in sorted(set(roles))],
    )
    session.add(user)
    session.flush()  # the audit line names the new account
    audit.record(
        session,
        actor=actor or "système",
        action="user.create",
        target=user,
        cpts_id=cpts_id,
        details={"roles": sorted(str(r) for r in roles)},
    )
    return user


def _refuse_self_lockout(actor, user: User) -> None:
    if getattr(actor, "id", None) == user.id:
        raise RuleViolation("Vous ne pouvez pas désactiver votre propre compte ni réinitialiser votre propre TOTP.")


def deactivate_user(session: Session, actor, user: User) -> None:
    """Deactivation is server-side: every session and token of the user stops working at once."""
    _refuse_self_lockout(actor, user)
    user.is_active = False
    user.deactivated_at = utcnow()
    end_all_sessions(session, user.id, reason="deactivated")
    audit.record(session, actor=actor, action="user.deactivate", target=user)


def reactivate_user(session: Session, actor, user: User) -> None:
    user.is_active = True
    user.deactivated_at = None
    audit.record(session, actor=actor, action="user.reactivate", target=user)


def set_password(session: Session, actor, user: User, password: str) -> None:
    check_password_strength(password)
    user.password_hash = hash_password(password)
    end_all_sessions(session, user.id, reason="password_changed")
    audit.record(session, actor=actor, action="user.password", target=user)


def change_own_password(
    session: Session, user: User, *, current: str, new: str, confirmation: str, keep_session: str | None
) -> None:
    """The user's own new password, proven by the current one; nothing changes when any check fails. Every other
    session of the user ends (one may be someone else's, opened with the old password); `keep_session` (the
    session token in use) stays open."""
    if not _verify_password(user.password_hash, current):
        raise ValidationFailed({"current_password": WRONG_CURRENT_PASSWORD})
    errors = {}
    if len(new or "") < PASSWORD_MIN_LENGTH:
        errors["new_password"] = TOO_SHORT
    elif new == current:
        errors["new_password"] = SAME_PASSWORD
    if new != confirmation:
        errors["new_password_confirmation"] = CONFIRMATION_DIFFERS
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(new)
    end_all_sessions(session, user.id, reason="password_changed", keep=keep_session)
    audit.record(session, actor=user, action="user.password_change", target=user)


def replace_own_totp(
    session: Session,
    user: User,
    *,
    password: str,
    secret: str,
    code: str,
    keep_session: str | None,
    now: dt.datetime | None = None,
) -> None:
    """A new authenticator for the user (a new phone, a key that may have leaked): the password proves the
    person, a code of the new key proves the new application holds it. Nothing changes when either is wrong.
    The old key stops working; every other session of the user ends."""
    if not _verify_password(user.password_hash, password):
        raise ValidationFailed({"current_password": WRONG_CURRENT_PASSWORD})
    step = _matching_step(secret, code, now or utcnow())
    if step is None:
        raise ValidationFailed({"code": NEW_CODE_REFUSED})
    user.totp_secret = secret
    # Steps count per key: the old key's last step says nothing about the new one, whose code is now spent.
    user.totp_last_step = step
    end_all_sessions(session, user.id, reason="totp_changed", keep=keep_session)
    audit.record(session, actor=user, action="user.totp_replace", target=user)


def reset_totp(session: Session, actor, user: User) -> None:
    _refuse_self_lockout(actor, user)
    user.totp_secret = None
    user.totp_last_step = None
    end_all_sessions(session, user.id, reason="totp_reset")
    audit.record(session, actor=actor, action="user.totp_reset", target=user)


def list_users(session: Session, cpts_id: int) -> list[User]:
    return list(session.scalars(select(User).where(User.cpts_id == cpts_id).order_by(User.login)))


def professionals_without_account(session: Session, cpts_id: int) -> list[Professional]:
    """The professionals of a CPTS that no account is linked to yet (a professional has one account)."""
    linked = select(User.professional_id).where(User.professional_id.is_not(None))
    return list(
        session.scalars(
            select(Professional)
            .where(Professional.cpts_id == cpts_id, Professional.id.not_in(linked))
            .order_by(Professional.last_name, Professional.first_name)
        )
    )


def get_user(session: Session, cpts_id: int, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.cpts_id != cpts_id:
        raise NotFound("Compte introuvable.")
    return user


# --- logins -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleLimits:
    window: dt.timedelta
    per_account_and_ip: int
    per_ip: int
    # Not a lock: past this many failures on one login from all addresses, the password step stops telling
    # whether the password was right (S19), so that a distributed guesser learns nothing and the owner,
    # who knows the password and holds the code, still gets in.
    per_account: int


class LoginRefusal(StrEnum):
    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginResult:
    """`user` is set when the password was right. With `verdict_withheld` the caller goes on to the second
    factor whatever the password was, and `user` (when set) has a TOTP key: only both factors together
    are judged."""

    user: User | None
    refusal: LoginRefusal | None = None
    verdict_withheld: bool = False


def _failures(session: Session, since: dt.datetime, *conditions) -> int:
    return session.execute(
        select(func.count(LoginAttempt.id)).where(
            LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at >= since, *conditions
        )
    ).scalar_one()


def is_throttled(session: Session, login: str, ip: str, limits: ThrottleLimits, *, now: dt.datetime) -> bool:
    """Throttle a source: a (login, IP) pair, and an IP across logins. Never a login as a whole, which a
    third party could then lock (S19); refused attempts are not recorded as failures, so they do not
    extend a lock either."""
    since = now - limits.window
    return (
        _failures(session, since, LoginAttempt.login == login, LoginAttempt.ip == ip) >= limits.per_account_and_ip
        or _failures(session, since, LoginAttempt.ip == ip) >= limits.per_ip
    )


def is_under_attack(session: Session, login: str, limits: ThrottleLimits, *, now: dt.datetime) -> bool:
    return _failures(session, now - limits.window, LoginAttempt.login == login) >= limits.per_account


def record_login_failure(session: Session, login: str, ip: str, *, factor: str, user: User | None = None) -> None:
    session.add(LoginAttempt(login=login, ip=ip, succeeded=False))
    audit.record(
        session,
        actor=user or f"login:{login}",
        action=f"login.{factor}",
        outcome="failure",
        cpts_id=user.cpts_id if user else None,
    )


def check_password(session: Session, *, login: str, password: str, ip: str, limits: ThrottleLimits) -> LoginResult:
    """First factor. Unknown login, wrong password and inactive account give the same refusal, in the
    same time (a dummy hash is verified for an unknown login). The caller commits either way."""
    login = normalise_login(login)
    now = utcnow()
    if is_throttled(session, login, ip, limits, now=now):
        audit.record(session, actor=f"login:{login}", action="login.throttled", outcome="denied")
        return LoginResult(None, LoginRefusal.THROTTLED)
    under_attack = is_under_attack(session, login, limits, now=now)
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        _verify_password(_DUMMY_HASH, password)
        ok = False
    else:
        ok = _verify_password(user.password_hash, password) and user.is_active
    if not ok or user is None:
        record_login_failure(session, login, ip, factor="password", user=user)
        return LoginResult(None, LoginRefusal.BAD_CREDENTIALS, verdict_withheld=under_attack)
    audit.record(session, actor=user, action="login.password", outcome="success")
    if under_attack:
        # An account not enrolled yet has no second factor to prove itself with: it waits out the attack.
        return LoginResult(user if user.totp_secret else None, verdict_withheld=True)
    return LoginResult(user)


def new_totp_secret() -> str:
    return pyotp.random_base32()  # drawn from `secrets`


def totp_provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.login, issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):  # one step of clock drift either way
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _claim_step(session: Session, user: User, step: int) -> bool:
    """Accept a time step once: a conditional UPDATE, so two processes verifying the same code at once
    cannot both succeed."""
    changed = rows_changed(
        session,
        update(User)
        .where(User.id == user.id, (User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False),
    )
    session.expire(user, ["totp_last_step"])
    return changed == 1


def verify_totp(session: Session, user: User, code: str, *, now: dt.datetime | None = None) -> bool:
    if not user.totp_secret or not user.is_active:
        return False
    step = _matching_step(user.totp_secret, code, now or utcnow())
    return step is not None and _claim_step(session, user, step)


def enrol_totp(session: Session, user: User, secret: str, code: str, *, now: dt.datetime | None = None) -> bool:
    step = _matching_step(secret, code, now or utcnow())
    if step is None or user.totp_secret:
        return False
    user.totp_secret = secret
    if not _claim_step(session, user, step):
        return False
    audit.record(session, actor=user, action="login.totp_enrolled")
    return True


# --- sessions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionLimits:
    idle: dt.timedelta
    absolute: dt.timedelta


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User) -> str:
    """A fresh session id for a fully authenticated user (never the pre-login one: no fixation)."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(id=_digest(token), user_id=user.id))
    session.add(LoginAttempt(login=user.login, ip="-", succeeded=True))
    audit.record(session, actor=user, action="login.success")
    return token


# The session's dates and its user with the linked professional (User.professional is joined) and the roles, in
# one statement built once with a bound parameter: this runs on every page, where building the statement and its
# options cost about as much as running it. The session row is read as columns, not as an entity: nothing of it
# enters the unit of work, and its two writes below are single UPDATEs.
_USER_OF_SESSION = (
    select(UserSession.created_at, UserSession.last_seen_at, UserSession.ended_at, User)
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.id == bindparam("session_id"))
    .options(joinedload(User.role_rows))
)
_TOUCH_SESSION = (
    update(UserSession)
    .where(UserSession.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_END_SESSION = (
    update(UserSession)
    .where(UserSession.id == bindparam("session_id"), UserSession.ended_at.is_(None))
    .values(ended_at=bindparam("now"), end_reason=bindparam("reason"))
    .execution_options(synchronize_session=False)
)


def _stop_reason(
    user_active: bool, created_at: dt.datetime, last_seen_at: dt.datetime, limits: SessionLimits, now: dt.datetime
) -> str | None:
    if not user_active:
        return "deactivated"
    if now - last_seen_at > limits.idle:
        return "idle_timeout"
    if now - created_at > limits.absolute:
        return "absolute_timeout"
    return None


def _keep_or_end(session: Session, session_id: str, found: Any, user_active: bool, limits: SessionLimits) -> bool:
    """Whether the session read as `found` (its dates) is live; ends it in the database when it stopped, and stamps
    its last use at most once a minute."""
    if found.ended_at is not None:
        return False
    now = utcnow()
    reason = _stop_reason(user_active, found.created_at, found.last_seen_at, limits, now)
    if reason:
        session.execute(_END_SESSION, {"session_id": session_id, "now": now, "reason": reason})
        return False
    if now - found.last_seen_at > TOUCH_INTERVAL:
        session.execute(_TOUCH_SESSION, {"session_id": session_id, "now": now})
    return True


def resume_session(session: Session, token: str, limits: SessionLimits) -> User | None:
    """The user of a live session, or None when it ended, idled out, aged out or its user was deactivated. Read
    from the database at every request, in every process: a logout, a revocation or a deactivation stops the
    session at the next request. The user is the ORM row (views that write hand it to the services), loaded with
    what the layout and the policies read of it, so that a page lazy-loads nothing of it."""
    session_id = _digest(token)
    found = session.execute(_USER_OF_SESSION, {"session_id": session_id}).unique().one_or_none()
    if found is None:
        return None
    return found.User if _keep_or_end(session, session_id, found, found.User.is_active, limits) else None


def end_session(session: Session, token: str, *, reason: str) -> None:
    row = session.get(UserSession, _digest(token))
    if row is not None and row.ended_at is None:
        row.ended_at, row.end_reason = utcnow(), reason


def end_all_sessions(session: Session, user_id: int, *, reason: str, keep: str | None = None) -> None:
    """End the user's open sessions, but the one of the token `keep` (the session in use, when the user acts)."""
    ending = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep is not None:
        ending = ending.where(UserSession.id != _digest(keep))
    session.execute(ending.values(ended_at=utcnow(), end_reason=reason).execution_options(synchronize_session=False))


# --- API tokens --------------------------------------------------------------------------------------------


def create_api_token(
    session: Session, user: User, *, name: str, expires_at: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """Returns the token row and its secret, which is shown once and never stored."""
    if not (name or "").strip():
        raise ValidationFailed({"name": "Donnez un nom au jeton (par exemple le logiciel qui l'utilise)."})
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed({"expires_at": "La date d'expiration doit être dans le futur."})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name.strip()[:100],
        token_hash=_digest(raw),
        prefix=raw[:12],
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()  # the audit line names the token
    audit.record(session, actor=user, action="token.create", target=token)
    return token, raw


def _token_usable(revoked_at: dt.datetime | None, expires_at: dt.datetime | None, user_active: bool, now) -> bool:
    """Checked against the database on every request, in every process: a revocation or a deactivation stops the
    token at the next request."""
    return revoked_at is None and user_active and (expires_at is None or expires_at > now)


def _is_stale(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    return last_used_at is None or now - last_used_at > TOUCH_INTERVAL


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls an API view (hub.app._bearer_user): what the access rules, the policies, the workflows and the
    audit read of a user, without the account's ORM rows. Loading those (token, user, professional, roles as
    entities) cost about 0.6 ms of CPU per request on PostgreSQL, a third of a patient read (P1); a view whose
    services need them is marked `needs_account` (hub.http.access) and gets `account_of(caller)`."""

    id: int
    login: str
    cpts_id: int
    professional_id: int | None
    roles: frozenset[Role]
    # The request's session, for the account read below; not part of what the caller is.
    session: Session | None = field(default=None, compare=False, repr=False)

    # flask-login's protocol, as on User.
    is_authenticated = True
    is_anonymous = False
    is_active = True

    def get_id(self) -> str:
        return str(self.id)

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    # The test suite's setting (tests/conftest.py): there the fallback below raises, so a view missing its
    # `needs_account` mark fails its tests instead of warning.
    strict: ClassVar[bool] = False

    def __getattr__(self, name: str):
        # Called only for what a Caller does not carry. A service reading the account's rows (`user.professional`…)
        # from a view not marked `needs_account` (hub.http.access) gets them, one read later, rather than a 500;
        # the warning names the view's omission. Never the credentials: no service reads them from a caller.
        if name.startswith("_") or name in _CREDENTIALS or not hasattr(User, name) or self.session is None:
            raise AttributeError(name)
        if Caller.strict:
            raise RuntimeError(f"{name} read on a light caller: {_OMISSION}")
        _log.warning("%s read on the light caller %s: %s", name, self.id, _OMISSION)
        return getattr(account_of(self.session, self), name)


_CREDENTIALS = frozenset({"password_hash", "totp_secret", "totp_last_step"})
_OMISSION = "mark its API view needs_account, or take its page's light_page mark off (hub.http.access)"


# What a Caller is made of besides its id and roles, and what the session's rules read (the account's activity): the
# token's and the page session's light lookups select them alike, one row per role (`_roles_of`).
_CALLER_COLUMNS = (User.login, User.cpts_id, User.professional_id, User.is_active)


def _roles_of(rows: list[Any]) -> frozenset[Role]:
    # An outer join: a user without any role has one row, whose role is NULL.
    return frozenset(row.role for row in rows if row.role is not None)


# One row per role of the token's user (one with a NULL role for a user without any), built once with a bound
# parameter: building it and its cache key per request cost more than running it. A light read that declares a
# preload (hub.http.access.light_read) joins its own SELECT to it (`authenticate_token_preloading`).
CALLER_OF_TOKEN = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        User.id.label("user_id"),
        *_CALLER_COLUMNS,
        UserRole.role,
    )
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)

# `_token_usable` in SQL, for a preload's join: a stopped token's rows read nothing of the preloaded tables.
TOKEN_USABLE = and_(
    ApiToken.revoked_at.is_(None),
    User.is_active.is_(True),
    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now", type_=ApiToken.expires_at.type)),
)


def authenticate_token_light(session: Session, raw: str) -> Caller | None:
    """The token's caller from one Core SELECT of plain columns: the token's revocation, its expiry and the user's
    deactivation are checked in the database at every request (no cache to invalidate)."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    return _caller_of(session, driver_rows(session, CALLER_OF_TOKEN, {"token_hash": _digest(raw)}), utcnow())


def authenticate_token_preloading(
    session: Session, raw: str, statement: Select, parameters: dict
) -> tuple[Caller | None, list[Any]]:
    """`authenticate_token_light` with a light read's own SELECT in the same round trip: `statement` is
    `CALLER_OF_TOKEN` outer-joined to its tables on a condition that includes `TOKEN_USABLE`, with its own
    `parameters`. The caller and its rows (the cross product of the caller's roles and the statement's rows), or
    None and no rows for a token that is unknown or stopped."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None, []
    now = utcnow()
    rows = driver_rows(session, statement, parameters | {"token_hash": _digest(raw), "now": now})
    caller = _caller_of(session, rows, now)
    return caller, rows if caller is not None else []


def _caller_of(session: Session, rows: list[Any], now: dt.datetime) -> Caller | None:
    if not rows:
        return None
    first = rows[0]
    if not _token_usable(first.revoked_at, first.expires_at, first.is_active, now):
        return None
    if _is_stale(first.last_used_at, now):
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == first.token_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Caller(first.user_id, first.login, first.cpts_id, first.professional_id, _roles_of(rows), session)


@dataclass(frozen=True, slots=True)
class SessionCaller(Caller):
    """Who browses a page marked `light_page` (hub.http.access): the Caller, with what the layout draws of the
    user (the name in the bar, whether the account's professional is a GP for the menu). Loading the session's
    user, professional and roles as entities cost about 0.45 ms of CPU per page on PostgreSQL, the same columns
    0.13 ms; the two pages so marked cost 0.75–0.78× of their CPU (bench/README.md, hu)."""

    display_name: str = ""
    profession: Profession | None = None


# The session's dates, its user's columns and profession, one row per role (a NULL role for a user without any);
# built once with a bound parameter, like _USER_OF_SESSION.
_CALLER_OF_SESSION = (
    select(
        UserSession.created_at,
        UserSession.last_seen_at,
        UserSession.ended_at,
        User.id,
        *_CALLER_COLUMNS,
        User.display_name,
        Professional.profession,
        UserRole.role,
    )
    .join(User, User.id == UserSession.user_id)
    .outerjoin(Professional, Professional.id == User.professional_id)
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(UserSession.id == bindparam("session_id"))
)


def resume_session_light(session: Session, token: str, limits: SessionLimits) -> SessionCaller | None:
    """`resume_session` read as plain columns (one Core SELECT): the same rules, checked in the database at every
    request, and the same writes when the session stops or is used; the page's services that need the account's
    ORM rows are not run under it (see hub.http.access.light_page)."""
    session_id = _digest(token)
    rows = driver_rows(session, _CALLER_OF_SESSION, {"session_id": session_id})
    if not rows or not _keep_or_end(session, session_id, rows[0], rows[0].is_active, limits):
        return None
    first = rows[0]
    return SessionCaller(
        first.id,
        first.login,
        first.cpts_id,
        first.professional_id,
        _roles_of(rows),
        session,
        display_name=first.display_name,
        profession=first.profession,
    )


def account_of(session: Session, caller: Caller) -> User:
    """The caller's account as an ORM row, for a service that reads its relationships: the token's SELECT has just
    checked that the token and the account are usable, in this transaction."""
    return session.get_one(User, caller.id)


def list_api_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_api_token(session: Session, actor: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.id:
        raise NotFound("Jeton introuvable.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor=actor, action="token.revoke", target=token)
    return token
