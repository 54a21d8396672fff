"""A real HTTPS server on loopback for the DMP, webhook and SMS connector tests: no mock of requests, ever.

`HttpsServer` is a threaded `http.server` behind TLS, with a certificate made by the trustme test CA
(tests/servers.TestCA); it can require a client certificate issued by a given CA. It records every request
it answers (and every TLS handshake it refused), answers from a programmable queue first ("fail the next
N", delays, any status), and otherwise with its `responder`: `accept_json` by default, or `FhirRecipient`,
a small MHD document recipient that keeps what it created and applies `If-None-Exist` conditions, so that
a re-sent deposit can be seen to have one effect.
"""

import base64
import dataclasses
import itertools
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.servers import TestCA


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    client_subject: str | None  # the client certificate's common name, when one was presented
    connection: int  # one number per TLS connection: requests sharing it reused the connection

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        return self.body or b"", "text/plain"


Responder = Callable[[Request], Answer]


@dataclass(frozen=True)
class _Late:
    seconds: float


def accept_json(request: Request) -> Answer:
    return Answer(200, {"id": f"msg-{uuid.uuid4().hex[:12]}"})


@dataclass(frozen=True)
class ClientCertificate:
    cert_file: Path
    key_file: Path


def client_certificate(ca: TestCA, directory: Path, name: str = "hub.cpts-test.fr") -> ClientCertificate:
    """The structure's certificate, issued by `ca`, as the two files the connectors are configured with."""
    leaf = ca.ca.issue_cert(name, common_name=name)
    cert_file, key_file = directory / f"{name}-{id(leaf)}.crt", directory / f"{name}-{id(leaf)}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    return ClientCertificate(cert_file, key_file)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: connection reuse is visible in `Request.connection`
    server: "_Server"

    def do_POST(self):
        self._answer()

    def do_GET(self):
        self._answer()

    def do_PUT(self):
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length),
            client_subject=_common_name(self.connection.getpeercert()),
            connection=self.connection.number,
        )
        answer = self.server.owner.answer_for(request)
        if answer.delay:
            time.sleep(answer.delay)
        body, content_type = answer.encoded()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.headers.get("Content-Type", content_type))
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            if name != "Content-Type":
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # quiet: the test reads `requests`, not stderr
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "HttpsServer", context: ssl.SSLContext):
        self.owner, self.context = owner, context
        self._numbers = itertools.count(1)
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # The handshake happens in the request's own thread, so that a client stuck in it blocks no one.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.owner.record_refused(type(exc).__name__)
            return
        tls.number = next(self._numbers)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout test) breaks the pipe: that is the test's point, not an error.
        pass


class HttpsServer:
    """An HTTPS server on 127.0.0.1, certificate from `ca`; with `client_ca`, a client certificate issued
    by it is required (the TLS handshake fails without one)."""

    def __init__(self, ca: TestCA, *, client_ca: TestCA | None = None, responder: Responder = accept_json):
        context = ca.server_context("127.0.0.1", "localhost")
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=client_ca.ca.cert_pem.bytes().decode())
        self.responder = responder
        self._lock = threading.Lock()
        self._queued: list[Answer | _Late] = []
        self._requests: list[Request] = []
        self._refused: list[str] = []
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="https-test-server", daemon=True
        )

    def __enter__(self) -> "HttpsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # --- what the test programs ------------------------------------------------------------------------

    def queue(self, *answers: "Answer | _Late") -> None:
        """Answers given, in order, to the next requests, before the responder is asked again."""
        with self._lock:
            self._queued.extend(answers)

    def fail_next(self, count: int, status: int = 503, *, body=None, headers: dict | None = None) -> None:
        self.queue(*(Answer(status, body, dict(headers or {})) for _ in range(count)))

    def delay_next(self, count: int, seconds: float) -> None:
        """The next requests are handled (the responder keeps their effect) but answered late: a client
        that gave up in the meantime does not know that they were received."""
        self.queue(*(_Late(seconds) for _ in range(count)))

    # --- what the test reads ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def refused_handshakes(self) -> list[str]:
        with self._lock:
            return list(self._refused)

    def wait_for_refused_handshake(self, timeout: float = 5.0) -> list[str]:
        """The server's side of a handshake the client gave up on may end a moment after the client's."""
        deadline = time.monotonic() + timeout
        while not self.refused_handshakes and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.refused_handshakes

    # --- server side -----------------------------------------------------------------------------------

    def answer_for(self, request: Request) -> Answer:
        with self._lock:
            self._requests.append(request)
            queued = self._queued.pop(0) if self._queued else None
        if isinstance(queued, _Late):
            return dataclasses.replace(self.responder(request), delay=queued.seconds)
        return queued if queued is not None else self.responder(request)

    def record_refused(self, reason: str) -> None:
        with self._lock:
            self._refused.append(reason)


def _common_name(certificate: dict | None) -> str | None:
    for rdn in (certificate or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


class FhirRecipient:
    """An MHD Document Recipient just big enough for the tests: it takes a transaction Bundle (ITI-65),
    creates each entry unless its `If-None-Exist` condition matches something it already holds, and answers
    a transaction-response Bundle with each entry's location.

    A submission whose DocumentReference condition matches is the same submission sent again: nothing of it
    is created again, and the answer is either the original locations (200) or, with `duplicate_status`, a
    refusal such as 409 with an OperationOutcome, as some recipients do."""

    def __init__(self, *, duplicate_status: int | None = None):
        self.duplicate_status = duplicate_status
        self.created: dict[str, list[dict]] = {}  # resource type → resources, in creation order
        self._conditions: dict[tuple[str, str], str] = {}  # (type, If-None-Exist) → location
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Answer:
        bundle = request.json
        if request.method != "POST" or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            return Answer(400, operation_outcome("invalid", "Bundle de type transaction attendu"))
        with self._lock:
            if self._already_submitted(bundle):
                if self.duplicate_status is not None:
                    return Answer(self.duplicate_status, operation_outcome("duplicate", "Document déjà présent"))
                return Answer(200, self._response(bundle, created=False))
            return Answer(200, self._response(bundle, created=True))

    def documents(self, master_identifier: str) -> list[dict]:
        with self._lock:
            return [
                d
                for d in self.created.get("DocumentReference", [])
                if d.get("masterIdentifier", {}).get("value") == master_identifier
            ]

    def binaries(self) -> list[bytes]:
        with self._lock:
            return [base64.b64decode(b["data"]) for b in self.created.get("Binary", [])]

    def _already_submitted(self, bundle: dict) -> bool:
        return any(
            (entry["request"]["url"], entry["request"].get("ifNoneExist")) in self._conditions
            for entry in bundle.get("entry", [])
            if entry["resource"]["resourceType"] == "DocumentReference" and entry["request"].get("ifNoneExist")
        )

    def _response(self, bundle: dict, *, created: bool) -> dict:
        entries = []
        for entry in bundle.get("entry", []):
            resource, req = entry["resource"], entry["request"]
            condition = (req["url"], req.get("ifNoneExist"))
            location = self._conditions.get(condition) if req.get("ifNoneExist") else None
            if location is None and created:
                location = f"{resource['resourceType']}/{uuid.uuid4().hex[:16]}/_history/1"
                self.created.setdefault(resource["resourceType"], []).append(resource)
                if req.get("ifNoneExist"):
                    self._conditions[condition] = location
                status = "201 Created"
            else:
                status = "200 OK"
            entries.append({"response": {"status": status, "location": location}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def operation_outcome(code: str, diagnostics: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
