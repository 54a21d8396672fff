"""Each CPTS's settings of its connectors: the fields an admin may set per channel, their checks, and the
rows the dispatcher reads (one query per batch).

A setting is stored under the server configuration key it overrides (`SMTP_HOST`…), so that a connector
is built by its usual `from_config` from the server's configuration with the CPTS's values on top. Only
the fields declared below are ever stored or read back: secrets (passwords, private keys, tokens) are not
among them and stay in the server's configuration.

What a CPTS sets stays within the CPTS: certificates and keys are names of files in its own directory on the
server (connectors.cpts_files), resolved there when a connector is built; addresses and hosts must be
public ones (connectors.targets) unless the server allows private hosts. A row saved before files were
chosen by name holds a path: it is unusable (its messages wait) until the admin chooses a file.
"""

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import cpts_files
from connectors.targets import NOT_PUBLIC, NonPublicTarget, allows_private_hosts, check_public
from hub import audit
from hub.errors import NotFound, ValidationFailed
from hub.models import ConnectorSetting

HOST, PORT, EMAIL, FILE, URL, TEXT = "host", "port", "email", "file", "url", "text"

# channel → field (the server configuration key it overrides) → (French label, kind). The one place the
# admin form, its checks and the dispatcher's merge take their fields from.
CHANNEL_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "email": {
        "SMTP_HOST": ("Serveur SMTP", HOST),
        "SMTP_PORT": ("Port SMTP", PORT),
        "SMTP_FROM": ("Adresse d'expédition", EMAIL),
        "SMTP_CA_FILE": ("Fichier des autorités de certification (CA)", FILE),
    },
    "mssante": {
        "MSSANTE_HOST": ("Serveur SMTP MSSanté", HOST),
        "MSSANTE_PORT": ("Port SMTP", PORT),
        "MSSANTE_SENDER": ("Boîte aux lettres MSSanté d'expédition", EMAIL),
        "MSSANTE_CA_FILE": ("Fichier des autorités de certification (CA)", FILE),
        "MSSANTE_CERT_FILE": ("Certificat client de la structure", FILE),
        "MSSANTE_KEY_FILE": ("Clé privée du certificat client", FILE),
        "MSSANTE_IMAP_HOST": ("Serveur IMAP (accusés de réception)", HOST),
        "MSSANTE_IMAP_PORT": ("Port IMAP", PORT),
        "MSSANTE_IMAP_USER": ("Identifiant IMAP (le mot de passe reste sur le serveur)", TEXT),
    },
    "dmp": {
        "DMP_URL": ("Adresse du service de dépôt (https)", URL),
        "DMP_CA_FILE": ("Fichier des autorités de certification (CA)", FILE),
        "DMP_CERT_FILE": ("Certificat client", FILE),
        "DMP_KEY_FILE": ("Clé privée du certificat client", FILE),
    },
    "webhook": {
        "WEBHOOK_URL": ("Adresse de réception des événements de la CPTS (https)", URL),
        "WEBHOOK_CA_FILE": ("Fichier des autorités de certification (CA) des destinataires", FILE),
    },
    "sas": {
        "SAS_URL": ("Adresse du Service d'accès aux soins recevant les statuts des rendez-vous (https)", URL),
        "SAS_CA_FILE": ("Fichier des autorités de certification (CA) du SAS", FILE),
    },
    "sms": {
        "SMS_API_URL": ("Adresse de l'API du fournisseur SMS (https)", URL),
        "SMS_SENDER": ("Nom d'expéditeur des SMS", TEXT),
        "SMS_CA_FILE": ("Fichier des autorités de certification (CA)", FILE),
    },
}
CHANNEL_LABELS = {
    "email": "E-mail (notifications sans données de santé)",
    "mssante": "MSSanté (messagerie sécurisée de santé)",
    "dmp": "DMP / Mon espace santé",
    "webhook": "Webhooks",
    "sas": "Service d'accès aux soins (statuts des rendez-vous pris par le SAS)",
    "sms": "SMS (rappels)",
}

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


CHOOSE_A_FILE = "Choisissez un fichier dans la liste des fichiers de la CPTS."


@dataclass(frozen=True)
class Scope:
    """What one CPTS's settings may designate: the files of its directory; private hosts or not."""

    files_dir: Path
    allow_private_hosts: bool = False

    @classmethod
    def of(cls, config: Mapping, cpts_id: int) -> "Scope":
        return cls(cpts_files.cpts_directory(config, cpts_id), allows_private_hosts(config))


def fields_of(channel: str) -> dict[str, tuple[str, str]]:
    if channel not in CHANNEL_FIELDS:
        raise NotFound("Connecteur inconnu.")
    return CHANNEL_FIELDS[channel]


# --- reading -----------------------------------------------------------------------------------------------


def load_cpts_settings(session: Session, cpts_ids: Iterable[int]) -> dict[tuple[int, str], dict | None]:
    """(cpts_id, channel) → the CPTS's declared settings of that channel, or None when it disabled the
    channel; a pair absent means "the server's configuration". One query whatever the number of CPTS."""
    ids = sorted({cpts_id for cpts_id in cpts_ids if cpts_id is not None})
    if not ids:
        return {}
    rows = session.scalars(select(ConnectorSetting).where(ConnectorSetting.cpts_id.in_(ids))).all()
    return {(row.cpts_id, row.channel): _declared(row) if row.is_enabled else None for row in rows}


def settings_by_channel(session: Session, cpts_id: int) -> dict[str, ConnectorSetting]:
    rows = session.scalars(select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts_id)).all()
    return {row.channel: row for row in rows}


def values_of(row: ConnectorSetting | None) -> dict:
    """The form's values for a stored row (or none yet)."""
    if row is None:
        return {"is_enabled": "true"}  # the server's settings apply: the channel is on
    return {**_declared(row), "is_enabled": "true" if row.is_enabled else "false"}


def file_fields(channel: str) -> list[str]:
    return [name for name, (_label, kind) in fields_of(channel).items() if kind == FILE]


def with_files_resolved(channel: str, declared: Mapping, files_dir: Path) -> dict:
    """The settings a connector is built from: each chosen file name replaced by its path in the CPTS's
    directory. Raises cpts_files.UnusableFile when one designates no file there (a path saved before names
    were chosen, a file since removed): the channel's messages then wait."""
    chosen = {name: declared[name] for name in file_fields(channel) if declared.get(name)}
    return {**declared, **{name: str(cpts_files.resolve(files_dir, value)) for name, value in chosen.items()}}


def unusable_files(channel: str, values: Mapping, files_dir: Path) -> list[str]:
    """The file fields of the stored values that designate no file of the CPTS's directory, for the page."""
    available = set(cpts_files.available_files(files_dir))
    return [name for name in file_fields(channel) if values.get(name) and values[name] not in available]


def _declared(row: ConnectorSetting) -> dict:
    stored = json.loads(row.settings or "{}")
    return {name: stored[name] for name in CHANNEL_FIELDS.get(row.channel, {}) if stored.get(name) not in (None, "")}


# --- checking and saving -----------------------------------------------------------------------------------


def validate(channel: str, form: Mapping[str, str], scope: Scope) -> dict:
    """The declared fields of `channel` from a submitted form, checked and typed; an empty field is left
    out (the server's value applies). Raises ValidationFailed with a French message per field."""
    settings, errors = {}, {}
    for name, (_label, kind) in fields_of(channel).items():
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        try:
            settings[name] = _CHECKS[kind](raw, scope)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ValidationFailed(errors)
    return settings


def save(
    session: Session, actor, *, cpts_id: int, channel: str, is_enabled: bool, form: Mapping[str, str], scope: Scope
):
    """Store a CPTS's settings of one channel (checked first: nothing is stored when one field is wrong),
    with an audit line naming the fields set; the dispatcher uses them from its next batch."""
    settings = validate(channel, form, scope)
    row = session.scalar(
        select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts_id, ConnectorSetting.channel == channel)
    )
    if row is None:
        row = ConnectorSetting(cpts_id=cpts_id, channel=channel)
        session.add(row)
    previous = _declared(row) if row.settings else {}
    row.is_enabled = is_enabled
    row.settings = json.dumps(settings, sort_keys=True)
    row.updated_by_user_id = actor.id
    session.flush()  # the id names the audit line's target
    changed = sorted(name for name in set(previous) | set(settings) if previous.get(name) != settings.get(name))
    audit.record(
        session,
        actor=actor,
        action="connector_settings.update",
        target=row,
        cpts_id=cpts_id,
        details={"channel": channel, "is_enabled": is_enabled, "changed": changed},
    )
    return row


def _host(raw: str, scope: Scope) -> str:
    if not _HOSTNAME.match(raw):
        raise ValueError("Nom de serveur invalide (par exemple smtp.exemple.fr).")
    _require_public(raw, scope)
    return raw.lower()


def _require_public(host: str, scope: Scope) -> None:
    if scope.allow_private_hosts:
        return
    try:
        check_public(host)
    except NonPublicTarget:
        raise ValueError(NOT_PUBLIC) from None
    except (OSError, UnicodeError):
        # A name that does not resolve now (DNS down, not yet published) is kept: the connector checks
        # it again before each connection, and refuses it then if it designates a private address.
        pass


def _port(raw: str, scope: Scope) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError("Le port doit être un nombre entier entre 1 et 65535.")
    return int(raw)


def _email(raw: str, scope: Scope) -> str:
    if len(raw) > 254 or not _ADDRESS.match(raw):
        raise ValueError("Adresse de messagerie invalide (par exemple cpts@exemple.mssante.fr).")
    return raw


def _file(raw: str, scope: Scope) -> str:
    # Only the CPTS's own files are offered; anything else gets the same answer, whether it exists or not.
    if raw not in cpts_files.available_files(scope.files_dir):
        raise ValueError(CHOOSE_A_FILE)
    if not os.access(cpts_files.resolve(scope.files_dir, raw), os.R_OK):
        raise ValueError(
            "Ce fichier n'est pas lisible par le hub : demandez à l'exploitant du serveur d'en corriger les droits."
        )
    return raw


def _url(raw: str, scope: Scope) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "https":
        raise ValueError("L'adresse doit commencer par https:// (connexion chiffrée obligatoire).")
    try:
        parts.port  # noqa: B018 -- a port out of range or not a number raises here
    except ValueError:
        raise ValueError("Adresse invalide : port incorrect.") from None
    if not parts.hostname or parts.username or parts.password:
        raise ValueError("Adresse invalide : un serveur est attendu après https://, sans identifiants.")
    _require_public(parts.hostname, scope)
    return raw


def _text(raw: str, scope: Scope) -> str:
    if len(raw) > 200:
        raise ValueError("Au plus 200 caractères.")
    return raw


_CHECKS = {HOST: _host, PORT: _port, EMAIL: _email, FILE: _file, URL: _url, TEXT: _text}
