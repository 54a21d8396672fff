"""The connectors the dispatcher sends with: one per channel built from the server's configuration, and per
CPTS from its own settings (connectors.settings) over the server's. The only module that knows every
connector; none of them imports it."""

import hashlib
import json
import threading
from collections.abc import Callable, Mapping

from connectors import cpts_files
from connectors.base import Connector, OutgoingMessage
from connectors.dmp import DmpConnector
from connectors.email import EmailConnector
from connectors.mssante import MssanteConnector
from connectors.reminders import SmsConnector
from connectors.sas import SasConnector
from connectors.settings import with_files_resolved
from connectors.targets import allows_private_hosts, check_public
from connectors.webhooks import WebhookConnector

Factory = Callable[[Mapping], "Connector | None"]
# Per-CPTS settings as connectors.settings loads them: (cpts_id, channel) → the row's settings,
# or None when the CPTS's admin disabled the channel.
CptsSettings = Mapping[tuple[int, str], Mapping | None]


# Where a connector sends, and the secrets by which the platform authenticates there (connectors.*).
ENDPOINT_KEYS = frozenset(
    {"SMTP_HOST", "SMTP_PORT", "MSSANTE_HOST", "MSSANTE_PORT", "MSSANTE_IMAP_HOST", "MSSANTE_IMAP_PORT"}
    | {"DMP_URL", "SMS_API_URL", "SAS_URL"}
)
# The mail servers a CPTS may choose; its HTTPS addresses are checked by connectors.https_client at each POST.
HOST_KEYS = frozenset({"SMTP_HOST", "MSSANTE_HOST", "MSSANTE_IMAP_HOST"})
SERVER_CREDENTIALS = frozenset(
    {"SMTP_USERNAME", "SMTP_PASSWORD", "SMS_API_TOKEN", "MSSANTE_IMAP_PASSWORD", "SAS_API_TOKEN"}
)


class ConnectorRegistry(Mapping):
    """channel → the connector built from the server's configuration (a Mapping, as before), plus each
    CPTS's own settings: `for_message(message, cpts_settings)` picks the connector of the message's channel
    for the message's CPTS, built from the CPTS's settings merged over the server's (the CPTS's win).

    Connectors built for a CPTS are kept per (CPTS, channel, settings), so that a connection stays reused
    from batch to batch and an edited setting takes effect at the next batch."""

    def __init__(self, config: Mapping):
        self.config = config
        self._factories: dict[str, Factory] = {}
        self._defaults: dict[str, Connector] = {}
        self._built: dict[tuple[int, str, str], Connector | None] = {}
        self._lock = threading.Lock()

    def register(self, factory: Factory) -> None:
        connector = factory(self.config)
        channel = (
            connector.channel if connector is not None else getattr(getattr(factory, "__self__", None), "channel", None)
        )
        if channel is None:
            return
        self._factories[channel] = factory
        if connector is not None:
            self._defaults[channel] = connector

    @property
    def channels(self) -> list[str]:
        """Every channel a connector exists for, configured or not."""
        return sorted(self._factories)

    def for_message(self, message: "OutgoingMessage", cpts_settings: CptsSettings) -> "Connector | None":
        """The connector for this message, or None when its channel is not configured for its CPTS (the
        message then waits). Raises what the connector's constructor raises on unusable settings, and
        cpts_files.UnusableFile when a chosen file is not in the CPTS's directory."""
        if message.cpts_id is None or (message.cpts_id, message.channel) not in cpts_settings:
            return self._defaults.get(message.channel)
        settings = cpts_settings[message.cpts_id, message.channel]
        if settings is None or message.channel not in self._factories:
            return None
        cache_key = (message.cpts_id, message.channel, _fingerprint(settings))
        with self._lock:
            if cache_key not in self._built:
                # The CPTS's previous settings of this channel are done with.
                for stale in [k for k in self._built if k[:2] == cache_key[:2]]:
                    _close(self._built.pop(stale))
                self._require_public_hosts(settings)
                directory = cpts_files.cpts_directory(self.config, message.cpts_id)
                resolved = with_files_resolved(message.channel, settings, directory)
                self._built[cache_key] = self._factories[message.channel](self.merged_settings(resolved))
            return self._built[cache_key]

    def _require_public_hosts(self, settings: Mapping) -> None:
        """A mail server a CPTS chose must be a public host, as when it was saved (its name may have changed
        since): raises connectors.targets.NonPublicTarget, or OSError when the name does not resolve now."""
        if allows_private_hosts(self.config):
            return
        for key in sorted(HOST_KEYS & settings.keys()):
            if settings[key] != self.config.get(key):
                check_public(settings[key])

    def merged_settings(self, settings: Mapping) -> dict:
        """The CPTS's settings over the server's, except that the server's credentials never go to an endpoint
        the CPTS chose: a CPTS admin pointing a channel at another host must not receive the platform's
        password or token."""
        merged = {**self.config, **settings}
        if any(key in ENDPOINT_KEYS and settings[key] != self.config.get(key) for key in settings):
            for key in SERVER_CREDENTIALS:
                merged[key] = settings.get(key)  # None: not the server's
        return merged

    def every_connector(self) -> list["Connector"]:
        with self._lock:
            built = [connector for connector in self._built.values() if connector is not None]
        return [*self._defaults.values(), *built]

    def __getitem__(self, channel: str) -> "Connector":
        return self._defaults[channel]

    def __iter__(self):
        return iter(self._defaults)

    def __len__(self) -> int:
        return len(self._defaults)

    def __or__(self, other: Mapping) -> dict:
        """`registry | {"x": connector}`: a plain dict of the server-configured connectors and those."""
        return {**self._defaults, **other}


def _fingerprint(settings: Mapping) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def build_registry(config: Mapping) -> "ConnectorRegistry":
    """channel → connector, for every connector whose settings are present. A channel missing here is
    "not configured": its messages wait in the outbox (connectors.dispatcher) instead of being lost."""
    registry = ConnectorRegistry(config)
    for factory in (
        EmailConnector.from_config,
        MssanteConnector.from_settings,
        DmpConnector.from_config,
        WebhookConnector.from_config,
        SmsConnector.from_config,
        SasConnector.from_config,
    ):
        registry.register(factory)
    return registry


def close_all(registry: Mapping[str, Connector]) -> None:
    """Let connectors that keep a connection open between messages close it."""
    every = registry.every_connector() if isinstance(registry, ConnectorRegistry) else registry.values()
    for connector in every:
        _close(connector)


def _close(connector) -> None:
    close = getattr(connector, "close", None)
    if close is not None:
        close()
