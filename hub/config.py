"""Configuration: defaults → instance file (instance/hub.cfg) → HUB_* environment → test override.

The result is validated once at start-up and never changed afterwards.
"""

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "ENV": "production",
    "DATABASE_URL": "sqlite:///instance/hub.sqlite3",
    # PostgreSQL roles (README, « Rôles PostgreSQL »): DATABASE_URL is the application's role, which may only INSERT
    # and SELECT the audit tables; migrations (`flask db upgrade`) connect as the tables' owner through
    # DATABASE_OWNER_URL (default: DATABASE_URL) and grant the application's rights to DATABASE_APP_ROLE.
    "DATABASE_OWNER_URL": None,
    "DATABASE_APP_ROLE": None,
    # The audit chain's HMAC key: outside the database, so that its owner cannot forge the chain. Required in
    # production; development and tests use hub.audit.DEVELOPMENT_KEY, which is public.
    "AUDIT_KEY": None,
    # Where the sequencer appends the chain's signed heads (default: <instance>/audit-checkpoints.jsonl): keep it
    # off the database server, e.g. on storage the database's administrators cannot write.
    "AUDIT_CHECKPOINT_FILE": None,
    "SECRET_KEY": None,
    "TIMEZONE": "Europe/Paris",
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_ABSOLUTE_HOURS": 12,
    "LOGIN_WINDOW_MINUTES": 15,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP": 5,
    "LOGIN_MAX_FAILURES_PER_IP": 20,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 50,
    "ARGON2_TIME_COST": 3,
    "ARGON2_MEMORY_COST": 65536,
    # PostgreSQL only: the longest a statement may run, and wait for a lock, on the application's connections, in
    # milliseconds; 0 is no limit. deploy/gunicorn_conf.py sets them for a web node, where nothing else bounds a
    # request (a gthread worker is never killed for a slow one); the worker and the CLI keep no limit.
    "STATEMENT_TIMEOUT_MS": 0,
    "LOCK_TIMEOUT_MS": 0,
    "API_PAGE_SIZE": 50,
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "TRUST_PROXY_HOPS": 0,
    # The hub's public address, for links in e-mails (no health data: the link leads behind login).
    "BASE_URL": None,
    # E-mail notifications (connectors.email). Without SMTP_HOST and SMTP_FROM, e-mails wait in the outbox.
    "SMTP_HOST": None,
    "SMTP_PORT": 587,
    "SMTP_FROM": None,
    "SMTP_STARTTLS": 1,  # 1: STARTTLS required, with certificate checks; 0 only for a local relay
    "SMTP_CA_FILE": None,  # CA bundle the server's certificate is checked against (default: the system's)
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_TIMEOUT_SECONDS": 30,
    # MSSanté (connectors.mssante, connectors.mdn): SMTP submission with STARTTLS from the structure's
    # applicative mailbox, its client certificate, the operator's CA; MDNs read back over IMAP. Without
    # host, sender and certificate, documents wait in the outbox.
    "MSSANTE_HOST": None,
    "MSSANTE_PORT": None,  # default 587
    "MSSANTE_SENDER": None,  # the applicative mailbox (type APP), …@<structure>.mssante.fr
    "MSSANTE_CA_FILE": None,
    "MSSANTE_CERT_FILE": None,
    "MSSANTE_KEY_FILE": None,
    "MSSANTE_UPLOAD_DIR": None,  # default UPLOAD_DIR
    "MSSANTE_IMAP_HOST": None,
    "MSSANTE_IMAP_PORT": None,  # default 143 (STARTTLS); 993 for implicit TLS
    "MSSANTE_IMAP_USER": None,
    "MSSANTE_IMAP_PASSWORD": None,
    # HTTPS connectors (connectors.dmp, .webhooks, .reminders): certificates checked against the CA file
    # (default: the system's); without their URL (or webhook secret), their messages wait in the outbox.
    "DMP_URL": None,  # FHIR endpoint taking MHD ITI-65 transactions (PDSm)
    "DMP_CA_FILE": None,
    "DMP_CERT_FILE": None,  # the structure's client certificate and its key
    "DMP_KEY_FILE": None,
    "DMP_TIMEOUT_SECONDS": 30,
    "WEBHOOK_SECRET": None,  # whsec_<base64>, Standard Webhooks signing secret
    "WEBHOOK_CA_FILE": None,
    "WEBHOOK_TIMEOUT_SECONDS": 30,
    # The Service d'accès aux soins (connectors.sas): where appointment statuses of SAS bookings are POSTed, and
    # the platform's token there (sent to this URL only, never to one a CPTS chose).
    "SAS_URL": None,
    "SAS_API_TOKEN": None,
    "SAS_CA_FILE": None,
    "SAS_TIMEOUT_SECONDS": 30,
    "SMS_API_URL": None,
    "SMS_API_TOKEN": None,
    "SMS_SENDER": None,
    "SMS_CA_FILE": None,
    "SMS_TIMEOUT_SECONDS": 30,
    # Per-CPTS connector settings (connectors.settings): the certificate, key and CA files a CPTS's admin
    # may choose, in one sub-directory per CPTS named by its id (default: <instance>/connector-files);
    # and whether connectors may reach private addresses (loopback, private networks, 169.254.x.x): 0 in
    # production, 1 only for a test bench or an internal gateway the operator trusts.
    "CONNECTOR_FILES_DIR": None,
    "CONNECTOR_ALLOW_PRIVATE_HOSTS": 0,
    # `hub worker`: scheduler lease, dispatcher period and the outbox lease of a message being sent.
    "WORKER_LEASE_SECONDS": 30,
    # Not lower without changing how the loops run: each is an interval job that skips its run, with a WARNING in
    # the log, while the previous one is still going (max_instances=1), so at 1 s a pass longer than a second under
    # load would warn every second. P7 did not show that 1 s helps either (bench/README.md, eighth pass).
    "DISPATCH_INTERVAL_SECONDS": 5,
    "OUTBOX_LEASE_SECONDS": 300,
    # When the oldest message due has waited longer than this for the worker (it is behind or stopped), the
    # coordination's « Envois » and desk say so, and `flask hub outbox status` exits 1 (monitoring).
    "OUTBOX_ALERT_MINUTES": 15,
    # Uploads and the documents the hub freezes (the reports' PDF and CDA, rendered by the worker): outside the web
    # root (default: <instance>/uploads), size-limited (I3). On several hosts, one directory shared by the web nodes
    # and both workers (docs/deployment.md): a web node serves the PDF a worker rendered, either worker sends it.
    "UPLOAD_DIR": None,
    "UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    # Pro Santé Connect (hub.services.psc): OpenID Connect login with e-CPS or the CPS card. The provider's
    # metadata come from its discovery document (default: <issuer>/.well-known/openid-configuration; PSC
    # publishes it at <issuer>/.well-known/wallet-openid-configuration). PSC reports its substantial eIDAS
    # level as `eidas1` (the CPS card and the e-CPS app), asked in `acr_values` and required in the ID token.
    "PSC_ENABLED": 0,
    "PSC_ISSUER": None,
    "PSC_DISCOVERY_URL": None,
    "PSC_CLIENT_ID": None,
    "PSC_CLIENT_SECRET": None,
    "PSC_REDIRECT_URI": None,  # <hub>/login/psc/callback, as registered with the provider
    "PSC_POST_LOGOUT_REDIRECT_URI": None,  # <hub>/login, as registered with the provider
    "PSC_REQUIRED_ACR": "eidas1",
    "PSC_SCOPE": "openid scope_all",
    "PSC_CA_FILE": None,
    "PSC_TIMEOUT_SECONDS": 10,
}

ENVIRONMENTS = ("production", "development", "testing")
# Public, for development and tests only (the same as hub.audit.DEVELOPMENT_KEY, which imports the models).
DEVELOPMENT_AUDIT_KEY = "hub-audit-development-key-not-a-secret"
INT_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, int)}


class ConfigError(RuntimeError):
    pass


def load_config(instance_path: Path, override: dict | None = None) -> dict:
    config: dict[str, Any] = dict(DEFAULTS)
    config.update(_read_instance_file(instance_path / "hub.cfg"))
    for key in DEFAULTS:
        value = os.environ.get(f"HUB_{key}")
        if value is not None:
            config[key] = int(value) if key in INT_KEYS else value
    config.update(override or {})
    if config["ENV"] == "development" and not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _development_secret(instance_path)
    if config["ENV"] != "production" and not config["AUDIT_KEY"]:
        config["AUDIT_KEY"] = DEVELOPMENT_AUDIT_KEY
    config["AUDIT_CHECKPOINT_FILE"] = config["AUDIT_CHECKPOINT_FILE"] or str(instance_path / "audit-checkpoints.jsonl")
    named_upload_dir = bool(config["UPLOAD_DIR"])
    config["UPLOAD_DIR"] = config["UPLOAD_DIR"] or str(instance_path / "uploads")
    config["DATABASE_URL"] = resolve_database_url(config["DATABASE_URL"])
    config["DATABASE_OWNER_URL"] = resolve_database_url(config["DATABASE_OWNER_URL"] or config["DATABASE_URL"])
    validate(config)
    if config["ENV"] == "production":
        check_upload_dir(Path(config["UPLOAD_DIR"]), named=named_upload_dir)
    return config


def _read_instance_file(path: Path) -> dict:
    """An instance file holds KEY = "value" lines, the same keys as HUB_* without the prefix."""
    if not path.exists():
        return {}
    values: dict = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip().strip("\"'")
        if key not in DEFAULTS:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[key] = int(value) if key in INT_KEYS else value
    return values


def _development_secret(instance_path: Path) -> str:
    # A stable key per checkout, so that a restart of `make run` keeps people logged in.
    path = instance_path / "dev-secret-key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def resolve_database_url(url: str) -> str:
    """A relative SQLite path is taken from the project root, not from the current directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        path = PROJECT_ROOT / url[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url


def validate(config: dict) -> None:
    if config["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"HUB_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if not config["SECRET_KEY"]:
        raise ConfigError("HUB_SECRET_KEY is required outside development")
    if config["ENV"] == "production" and len(config["SECRET_KEY"]) < 32:
        raise ConfigError("HUB_SECRET_KEY must be at least 32 characters long")
    if config["ENV"] == "production" and (not config["AUDIT_KEY"] or len(config["AUDIT_KEY"]) < 32):
        raise ConfigError("HUB_AUDIT_KEY (at least 32 characters) is required in production")
    try:
        ZoneInfo(config["TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"HUB_TIMEZONE {config['TIMEZONE']!r} is not a known time zone") from exc
    if not config["DATABASE_URL"].startswith(("sqlite:", "postgresql")):
        raise ConfigError("HUB_DATABASE_URL must be a SQLite or PostgreSQL URL")
    for key in ("STATEMENT_TIMEOUT_MS", "LOCK_TIMEOUT_MS"):
        if config[key] < 0:
            raise ConfigError(f"HUB_{key} must be 0 (no limit) or a positive number of milliseconds")
    if config["OUTBOX_ALERT_MINUTES"] < 1:
        raise ConfigError("HUB_OUTBOX_ALERT_MINUTES must be at least 1 (minutes)")
    role = config["DATABASE_APP_ROLE"]
    if role and not role.replace("_", "").isalnum():
        raise ConfigError("HUB_DATABASE_APP_ROLE must be a plain role name (letters, digits, underscores)")
    _validate_psc(config)


SHARED = "one directory shared by the web nodes and the workers, un répertoire partagé : docs/deployment.md"


def check_upload_dir(path: Path, *, named: bool) -> None:
    """Production refuses to start without a writable upload directory rather than answer 500 on every PDF, or
    render documents nobody can read. A directory named by HUB_UPLOAD_DIR must already exist: it is usually the
    shared mount, and creating a local directory in its place would hide that it is not mounted. The default one
    (<instance>/uploads, a single host) is created."""
    if not named:
        path.mkdir(parents=True, exist_ok=True)
    if not path.is_dir():
        raise ConfigError(f"HUB_UPLOAD_DIR {path} is not a directory / n'est pas un répertoire existant ({SHARED})")
    try:
        # A real write, not os.access: a read-only mount, systemd's ProtectSystem or an NFS root squash all show.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"HUB_UPLOAD_DIR {path} is not writable / n'est pas modifiable ({SHARED}): {exc}") from exc


PSC_REQUIRED = ("PSC_ISSUER", "PSC_CLIENT_ID", "PSC_CLIENT_SECRET", "PSC_REDIRECT_URI", "PSC_POST_LOGOUT_REDIRECT_URI")


def _validate_psc(config: dict) -> None:
    if not config["PSC_ENABLED"]:
        return
    missing = [f"HUB_{key}" for key in PSC_REQUIRED if not config[key]]
    if missing:
        raise ConfigError(f"HUB_PSC_ENABLED needs {', '.join(missing)}")
    if config["ENV"] == "production":
        urls = [config[key] for key in ("PSC_ISSUER", "PSC_DISCOVERY_URL", "PSC_REDIRECT_URI") if config[key]]
        if not all(url.startswith("https://") for url in urls):
            raise ConfigError("HUB_PSC_ISSUER, HUB_PSC_DISCOVERY_URL and HUB_PSC_REDIRECT_URI must be https:// URLs")
