"""Real servers on loopback for the connector tests: no mock of smtplib, ever.

`SmtpServer` is an aiosmtpd server on 127.0.0.1 and a free port, with STARTTLS on a certificate made by
a trustme test CA (or without STARTTLS, to test that a downgrade is refused). It records every message
it accepts and can be told to answer RCPT for given recipients with a chosen reply (451, 550…).
"""

import email
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    raw: bytes
    over_tls: bool
    client_cert_subject: str | None = None  # the client certificate's commonName, when one was presented

    @property
    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=policy.default)

    @property
    def subject(self) -> str:
        return self.parsed["Subject"]

    @property
    def body(self) -> str:
        return self.parsed.get_body(("plain",)).get_content()


@dataclass
class Recorder:
    """The aiosmtpd handler: accepts, refuses per recipient, and records."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient → reply to RCPT TO
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(envelope.content)
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            message_id=headers["Message-ID"],
            raw=envelope.content,
            over_tls=session.ssl is not None,
            client_cert_subject=_common_name((session.ssl or {}).get("peercert")),
        )
        with self.lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"


def _common_name(peercert: dict | None) -> str | None:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class TestCA:
    """A throw-away certificate authority; its certificate is the client's CA bundle."""

    __test__ = False

    def __init__(self, directory: Path):
        self.ca = trustme.CA()
        self.ca_file = directory / f"ca-{id(self)}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self, *hosts: str, require_client_cert: bool = False) -> ssl.SSLContext:
        """With `require_client_cert`, the handshake fails unless the client presents a certificate signed
        by this CA (as an MSSanté operator checks the structure's certificate)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(hosts or ("127.0.0.1", "localhost"))).configure_cert(context)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context

    def client_cert(self, directory: Path, name: str) -> tuple[Path, Path]:
        """A client certificate for `name` and its key, as files: (cert_file, key_file)."""
        issued = self.ca.issue_cert(name, common_name=name)
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert_file))
        issued.private_key_pem.write_to_path(str(key_file))
        return cert_file, key_file


class SmtpServer:
    """An SMTP server on 127.0.0.1: STARTTLS (required) when given a TLS context, plain otherwise."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, port: int | None = None):
        self.handler = Recorder()
        self.host = "127.0.0.1"
        self.port = port or free_port()  # a given port: the server that was down comes back where it was
        options = {"tls_context": tls_context, "require_starttls": True} if tls_context else {}
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=10, **options)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def message_ids(self) -> Counter:
        return Counter(message.message_id for message in self.messages)

    def refuse(self, recipient: str, reply: str) -> None:
        self.handler.rcpt_replies[recipient] = reply

    def accept(self, recipient: str) -> None:
        self.handler.rcpt_replies.pop(recipient, None)

    def config(self, ca_file: Path | None, **overrides) -> dict:
        """The hub settings that point the e-mail connector at this server."""
        return {
            "SMTP_HOST": self.host,
            "SMTP_PORT": self.port,
            "SMTP_FROM": "hub@cpts-test.fr",
            "SMTP_STARTTLS": 1,
            "SMTP_CA_FILE": str(ca_file) if ca_file else None,
            "SMTP_TIMEOUT_SECONDS": 10,
            "BASE_URL": "https://hub.cpts-test.fr",
            "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test servers listen on loopback
        } | overrides
