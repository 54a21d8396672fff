"""What the HTTPS connectors (DMP, webhooks, SMS) share: a verified TLS session, and the sorting of failures
into transient and permanent errors.

Certificates are always checked, against the configured CA bundle or the system's, and the structure's
client certificate is presented when one is configured (S16). A failure of the transport (no route, TLS
refused, timeout) or of the receiver (5xx, 408, 429) is transient: the message waits and drains when the
receiver is back (R14), and so is a 401: the hub's own credentials are to be fixed. Any other 4xx is about
the message itself, so it is permanent: retrying the same request cannot help. Error texts are in French,
hold no health data and are kept short.

Each POST first checks that its host is public (connectors.targets) unless the server allows private hosts:
a CPTS's admin chose the address, and a name may have changed since it was saved. A private target is a
permanent error: the message is dead with the reason, no retry will make the address acceptable.
"""

from urllib.parse import urlsplit

import requests

from connectors.base import PermanentError, TransientError
from connectors.targets import NonPublicTarget, check_public

TRANSIENT_STATUSES = {408, 425, 429}
CREDENTIALS_REFUSED = {401, 407}
DETAIL_LIMIT = 200


def require_https(url: str, setting: str) -> str:
    """A configuration error, raised at start-up: nothing of a patient's ever travels in clear."""
    parts = urlsplit(url or "")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{setting} doit être une adresse https:// (reçu : {parts.scheme or 'aucun schéma'})")
    return url


class HubSession(requests.Session):
    allow_private_hosts = False


def https_session(
    *,
    ca_file: str | None,
    cert_file: str | None = None,
    key_file: str | None = None,
    allow_private_hosts: bool = False,
) -> HubSession:
    """One session per connector: its connections are reused from message to message."""
    if key_file and not cert_file:
        raise ValueError("une clé privée sans certificat client ne sert à rien : indiquez le certificat")
    session = HubSession()
    session.allow_private_hosts = allow_private_hosts
    session.verify = ca_file or True
    if cert_file:
        session.cert = (cert_file, key_file) if key_file else cert_file
    return session


def post(session: HubSession, url: str, *, what: str, timeout: float, **kwargs) -> requests.Response:
    """POST, with transport failures turned into TransientError. Redirects are not followed: a POST that
    moves elsewhere is a configuration to fix, not something to replay blindly."""
    if not session.allow_private_hosts:
        require_public_host(url, what=what)
    try:
        # `verify` again per request: otherwise requests lets REQUESTS_CA_BUNDLE override the session's bundle.
        return session.post(url, timeout=timeout, allow_redirects=False, verify=session.verify, **kwargs)
    except requests.exceptions.SSLError:
        raise TransientError(f"{what} : échec TLS (certificat non vérifié ou refusé) : envoi refusé") from None
    except requests.exceptions.Timeout:
        raise TransientError(f"{what} : délai de réponse dépassé") from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"{what} : injoignable ({type(exc).__name__})") from None


def require_public_host(url: str, *, what: str) -> None:
    parts = urlsplit(url)
    try:
        check_public(parts.hostname or "", port=parts.port or 443)
    except NonPublicTarget:
        raise PermanentError(f"{what} : adresse non publique refusée ({parts.hostname}) : envoi refusé") from None
    except (OSError, UnicodeError, ValueError):
        raise TransientError(f"{what} : injoignable (nom de serveur introuvable)") from None


def raise_for_status(response: requests.Response, *, what: str) -> None:
    """Nothing for a 2xx; otherwise the transient or permanent error the status calls for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"{what} : réponse {status}"
    reason = error_detail(response)
    if reason:
        detail += f" ({reason})"
    if status in TRANSIENT_STATUSES or status >= 500:
        wait = response.headers.get("Retry-After")
        if wait:
            detail += f" ; nouvel essai demandé après {wait[:40]}"
        raise TransientError(detail[:500])
    if 300 <= status < 400:
        raise TransientError(f"{what} : redirection non suivie ({status}) : vérifiez l'adresse configurée")
    if status in CREDENTIALS_REFUSED:
        # The hub's own credentials (token, certificate) are refused: every message would fail alike, so
        # they wait until the administrator fixes them, instead of all going dead.
        raise TransientError(f"{detail[:400]} : identifiants du hub refusés, à vérifier par l'administrateur")
    raise PermanentError(detail[:500])


def error_detail(response: requests.Response) -> str:
    """The receiver's own words, when it gave them as JSON (a FHIR OperationOutcome's diagnostics, a
    problem+json's title and detail, a provider's `error`/`message`), truncated; never an HTML page."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    if body.get("resourceType") == "OperationOutcome":
        parts = [
            issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code") or ""
            for issue in body.get("issue") or []
            if isinstance(issue, dict)
        ]
    else:
        parts = [body.get(key) for key in ("title", "detail", "error", "message")]
    text = " ; ".join(str(part) for part in parts if part)
    return " ".join(text.split())[:DETAIL_LIMIT]
