"""Pro Santé Connect: the OpenID Connect authorization code flow with PKCE (S256), state and nonce, the ID token
verified with PyJWT (signature against the provider's JWKS, issuer, audience, expiry, issue time, nonce, acr), the
professional found by the RPPS of the userinfo's `SubjectNameID` (the IdNat_PS, "8" + RPPS), never by name.

Every refusal raises `PscRefused` with a French message for the login page, after queuing its audit line.
"""

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import audit
from hub.db import utcnow
from hub.models import Organisation, Professional, User

# The algorithms PSC signs with; "none" and the HMAC family (keyed with the client secret) are never accepted.
ALGORITHMS = ["RS256", "ES256"]
# Clocks of the hub and of the provider may differ by this much.
LEEWAY = dt.timedelta(seconds=30)
# A login started at PSC must come back within this delay.
FLOW_DELAY = dt.timedelta(minutes=10)
METADATA_LIFETIME_SECONDS = 3600
RPPS_PREFIX = "8"  # IdNat_PS of a professional registered in the RPPS

RETRY = "Recommencez la connexion avec Pro Santé Connect."
MESSAGES = {
    "disabled": "La connexion par Pro Santé Connect n'est pas ouverte sur ce hub.",
    "unreachable": f"Pro Santé Connect ne répond pas pour le moment. Réessayez dans quelques minutes. {RETRY}",
    "provider_error": f"Pro Santé Connect n'a pas authentifié la connexion. {RETRY}",
    "bad_state": f"Cette réponse de Pro Santé Connect ne correspond à aucune connexion en cours. {RETRY}",
    "code_refused": f"Ce code de connexion a déjà servi ou a expiré. {RETRY}",
    "bad_token": f"Le jeton de Pro Santé Connect n'est pas valide (signature ou émetteur). {RETRY}",
    "expired_token": f"Le jeton de Pro Santé Connect a expiré. {RETRY}",
    "bad_nonce": f"Le jeton de Pro Santé Connect ne correspond pas à cette connexion. {RETRY}",
    "wrong_acr": (
        f"Votre authentification Pro Santé Connect n'a pas le niveau requis (carte CPS ou application e-CPS). {RETRY}"
    ),
    "unknown_rpps": (
        "Aucun compte du hub n'est lié à votre numéro RPPS. Demandez à l'administrateur de votre CPTS de créer "
        "votre compte."
    ),
    "inactive_user": "Votre compte du hub est désactivé. Contactez l'administrateur de votre CPTS.",
}


class PscRefused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.message = MESSAGES[reason]


@dataclass(frozen=True)
class PscSettings:
    issuer: str
    discovery_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    required_acr: str
    scope: str
    verify: str | bool
    timeout: int

    @classmethod
    def from_config(cls, config) -> "PscSettings | None":
        """The settings, or None when PSC login is off (hub.config checked the required keys at start-up)."""
        if not config["PSC_ENABLED"]:
            return None
        issuer = config["PSC_ISSUER"].rstrip("/")
        return cls(
            issuer=issuer,
            discovery_url=config["PSC_DISCOVERY_URL"] or f"{issuer}/.well-known/openid-configuration",
            client_id=config["PSC_CLIENT_ID"],
            client_secret=config["PSC_CLIENT_SECRET"],
            redirect_uri=config["PSC_REDIRECT_URI"],
            post_logout_redirect_uri=config["PSC_POST_LOGOUT_REDIRECT_URI"],
            required_acr=config["PSC_REQUIRED_ACR"],
            scope=config["PSC_SCOPE"],
            verify=config["PSC_CA_FILE"] or True,
            timeout=config["PSC_TIMEOUT_SECONDS"],
        )


# --- the provider's metadata and keys, kept for an hour per process ------------------------------------------

_metadata: dict[str, tuple[float, dict]] = {}
_key_clients: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


def _get(settings: PscSettings, url: str, **kwargs) -> requests.Response:
    try:
        response = requests.get(url, timeout=settings.timeout, verify=settings.verify, **kwargs)
    except requests.RequestException as exc:
        raise PscRefused("unreachable") from exc
    if response.status_code != 200:
        raise PscRefused("unreachable")
    return response


def provider_metadata(settings: PscSettings) -> dict:
    """The discovery document, whose `issuer` must be the configured one (OpenID Connect Discovery § 4.3)."""
    with _lock:
        cached = _metadata.get(settings.discovery_url)
    if cached and time.monotonic() - cached[0] < METADATA_LIFETIME_SECONDS:
        return cached[1]
    try:
        document = _get(settings, settings.discovery_url).json()
    except ValueError as exc:
        raise PscRefused("unreachable") from exc
    needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
    if not isinstance(document, dict) or any(not isinstance(document.get(key), str) for key in needed):
        raise PscRefused("unreachable")
    if document["issuer"].rstrip("/") != settings.issuer:
        raise PscRefused("bad_token")
    with _lock:
        _metadata[settings.discovery_url] = (time.monotonic(), document)
    return document


def _key_client(settings: PscSettings, jwks_uri: str) -> jwt.PyJWKClient:
    with _lock:
        if jwks_uri not in _key_clients:
            context = ssl.create_default_context(cafile=settings.verify if isinstance(settings.verify, str) else None)
            # The key set is fetched again when a token names a kid it does not hold (a rotation).
            _key_clients[jwks_uri] = jwt.PyJWKClient(
                jwks_uri,
                cache_jwk_set=True,
                lifespan=METADATA_LIFETIME_SECONDS,
                timeout=settings.timeout,
                ssl_context=context,
            )
        return _key_clients[jwks_uri]


# --- the flow -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingFlow:
    """What the browser's session keeps between the redirection to PSC and its return: used once."""

    state: str
    nonce: str
    code_verifier: str
    started_at: float

    def as_dict(self) -> dict:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.code_verifier, "at": self.started_at}

    @classmethod
    def from_dict(cls, data: Any) -> "PendingFlow | None":
        if not isinstance(data, dict):
            return None
        return cls(data["state"], data["nonce"], data["verifier"], data["at"])


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def begin(session: Session, settings: PscSettings) -> tuple[str, PendingFlow]:
    """The authorization URL to send the browser to, and what its session must keep until the return."""
    try:
        authorization_endpoint = provider_metadata(settings)["authorization_endpoint"]
    except PscRefused as exc:
        raise _refuse(session, exc.reason) from exc
    flow = PendingFlow(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        started_at=utcnow().timestamp(),
    )
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": settings.scope,
        "acr_values": settings.required_acr,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": _s256(flow.code_verifier),
        "code_challenge_method": "S256",
    }
    return f"{authorization_endpoint}?{urlencode(query)}", flow


@dataclass(frozen=True)
class PscLogin:
    user: User
    id_token: str


def _refuse(session: Session, reason: str, *, actor: Any = "psc", details: dict | None = None) -> PscRefused:
    audit.record(
        session,
        actor=actor,
        action="login.psc",
        outcome="failure",
        details={"reason": reason, **(details or {})},
        cpts_id=getattr(actor, "cpts_id", None),
    )
    return PscRefused(reason)


def finish(session: Session, settings: PscSettings, flow: PendingFlow | None, *, params: dict) -> PscLogin:
    """Complete a login from the provider's answer (`params`: the callback's query). The state must be the
    pending flow's, the code is exchanged with its PKCE verifier, the ID token and its claims are verified,
    and the RPPS of the userinfo leads to an active user. On success the user is marked as having PSC."""
    if flow is None or not hmac.compare_digest(str(params.get("state", "")), flow.state):
        raise _refuse(session, "bad_state")
    if utcnow().timestamp() - flow.started_at > FLOW_DELAY.total_seconds():
        raise _refuse(session, "bad_state", details={"late": True})
    if params.get("error") or not params.get("code"):
        raise _refuse(session, "provider_error", details={"error": str(params.get("error", ""))[:60]})
    try:
        metadata = provider_metadata(settings)
    except PscRefused as exc:
        raise _refuse(session, exc.reason) from exc
    tokens = _exchange(session, settings, metadata, code=str(params["code"]), verifier=flow.code_verifier)
    claims = _verified_claims(session, settings, metadata, tokens["id_token"], nonce=flow.nonce)
    rpps = _rpps(session, settings, metadata, tokens["access_token"], subject=claims["sub"])
    user = session.scalar(
        select(User).join(Professional, User.professional_id == Professional.id).where(Professional.rpps == rpps)
    )
    if user is None:
        raise _refuse(session, "unknown_rpps", details={"rpps": rpps})
    if not user.is_active:
        raise _refuse(session, "inactive_user", actor=user)
    if user.psc_linked_at is None:
        user.psc_linked_at = utcnow()
    audit.record(session, actor=user, action="login.psc", details={"acr": claims["acr"]})
    return PscLogin(user, tokens["id_token"])


def _exchange(session: Session, settings: PscSettings, metadata: dict, *, code: str, verifier: str) -> dict:
    try:
        response = requests.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": settings.redirect_uri,
                "code_verifier": verifier,
            },
            auth=(settings.client_id, settings.client_secret),
            timeout=settings.timeout,
            verify=settings.verify,
        )
    except requests.RequestException as exc:
        raise _refuse(session, "unreachable") from exc
    if response.status_code != 200:
        # invalid_grant: a code already used (replayed), expired, or exchanged with another verifier.
        raise _refuse(session, "code_refused", details={"status": response.status_code})
    try:
        tokens = response.json()
    except ValueError as exc:
        raise _refuse(session, "bad_token") from exc
    if not isinstance(tokens.get("id_token"), str) or not isinstance(tokens.get("access_token"), str):
        raise _refuse(session, "bad_token")
    return tokens


def _verified_claims(session: Session, settings: PscSettings, metadata: dict, id_token: str, *, nonce: str) -> dict:
    try:
        key = _key_client(settings, metadata["jwks_uri"]).get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token,
            key.key,
            algorithms=ALGORITHMS,
            audience=settings.client_id,
            issuer=metadata["issuer"],
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _refuse(session, "expired_token") from exc
    except jwt.PyJWKClientConnectionError as exc:
        raise _refuse(session, "unreachable") from exc
    except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
        raise _refuse(session, "bad_token", details={"error": type(exc).__name__}) from exc
    # Several audiences: the token must have been issued to this client (OpenID Connect Core § 3.1.3.7).
    if isinstance(claims["aud"], list) and len(claims["aud"]) > 1 and claims.get("azp") != settings.client_id:
        raise _refuse(session, "bad_token", details={"error": "azp"})
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise _refuse(session, "bad_nonce")
    if claims.get("acr") != settings.required_acr:
        raise _refuse(session, "wrong_acr", details={"acr": str(claims.get("acr", ""))[:40]})
    return claims


def _rpps(session: Session, settings: PscSettings, metadata: dict, access_token: str, *, subject: str) -> str:
    """The RPPS of the authenticated professional, from the userinfo of the same subject as the ID token."""
    try:
        info = _get(settings, metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}).json()
    except PscRefused as exc:
        raise _refuse(session, "unreachable") from exc
    except ValueError as exc:
        raise _refuse(session, "bad_token") from exc
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise _refuse(session, "bad_token", details={"error": "userinfo sub"})
    national_id = str(info.get("SubjectNameID", ""))
    rpps = national_id.removeprefix(RPPS_PREFIX)
    if not national_id.startswith(RPPS_PREFIX) or len(rpps) != 11 or not rpps.isdigit():
        raise _refuse(session, "unknown_rpps", details={"national_id": national_id[:20]})
    return rpps


def end_session_url(settings: PscSettings, id_token: str) -> str | None:
    """Where the browser goes to end its PSC session too (RP-initiated logout), or None when PSC has no
    such endpoint or cannot be reached (the hub's session is ended either way)."""
    try:
        endpoint = provider_metadata(settings).get("end_session_endpoint")
    except PscRefused:
        return None
    if not isinstance(endpoint, str):
        return None
    query = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": settings.post_logout_redirect_uri,
        "client_id": settings.client_id,
    }
    return f"{endpoint}?{urlencode(query)}"


# --- the CPTS's choice ----------------------------------------------------------------------------------------


def password_refused(session: Session, user: User) -> bool:
    """Whether this user's password login is refused: their CPTS refuses it to those who have PSC, and they do."""
    if user.psc_linked_at is None:
        return False
    cpts = session.get(Organisation, user.cpts_id)
    return cpts is not None and cpts.is_password_refused_to_psc_users


def login_settings(session: Session, cpts_id: int, *, psc_enabled: bool) -> dict:
    """The CPTS's login settings, with how many of its accounts have PSC (those the choice applies to)."""
    cpts = session.get(Organisation, cpts_id)
    assert cpts is not None  # a user's CPTS (users.cpts_id is a foreign key)
    psc_users = session.scalar(
        select(func.count(User.id)).where(User.cpts_id == cpts_id, User.psc_linked_at.is_not(None))
    )
    return {
        "psc_enabled": psc_enabled,
        "password_refused_to_psc_users": cpts.is_password_refused_to_psc_users,
        "psc_users": psc_users,
    }


def set_password_refused_to_psc_users(session: Session, actor, cpts_id: int, *, refused: bool) -> None:
    """The CPTS's choice, audited."""
    cpts = session.get(Organisation, cpts_id)
    assert cpts is not None  # the acting admin's CPTS
    cpts.is_password_refused_to_psc_users = refused
    audit.record(
        session, actor=actor, action="cpts.psc_password", target=cpts, cpts_id=cpts_id, details={"refused": refused}
    )
