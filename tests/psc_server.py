"""A real OpenID Connect provider on loopback standing in for Pro Santé Connect (tests/psc_provider: panva's
oidc-provider under Node), and a loopback relay in front of its token endpoint that re-signs the ID token with a
key of its own, as a forger would.

The provider is installed from its pinned lock file (`npm ci`) the first time; without Node or npm the tests
that need it are skipped."""

import base64
import json
import shutil
import subprocess
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

PROVIDER_DIR = Path(__file__).parent / "psc_provider"
CLIENT_ID = "hub-cpts-test"
CLIENT_SECRET = "psc-test-client-secret-that-is-long-enough"
SUBSTANTIAL = "eidas1"
OTHER_LEVEL = "eidas0"


def ensure_installed() -> None:
    if (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("Node.js and npm are needed for the Pro Santé Connect tests")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(PROVIDER_DIR)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"npm could not install oidc-provider: {result.stderr.decode()[-300:]}")


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_provider(redirect_uri: str, post_logout_redirect_uri: str) -> Provider:
    ensure_installed()
    node = shutil.which("node")
    assert node is not None  # ensure_installed skipped otherwise
    process = subprocess.Popen(
        [node, "provider.mjs", CLIENT_ID, CLIENT_SECRET, redirect_uri, post_logout_redirect_uri],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("READY "):
            return Provider(line.split()[1], process)
    process.wait(timeout=10)
    process.stdout.close()
    raise RuntimeError(f"the PSC test provider stopped (exit {process.returncode})")


def settings(provider: Provider, *, redirect_uri: str, post_logout_redirect_uri: str, discovery_url=None) -> dict:
    """The HUB_PSC_* settings of a hub that trusts `provider`."""
    return {
        "PSC_ENABLED": 1,
        "PSC_ISSUER": provider.issuer,
        "PSC_DISCOVERY_URL": discovery_url,
        "PSC_CLIENT_ID": CLIENT_ID,
        "PSC_CLIENT_SECRET": CLIENT_SECRET,
        "PSC_REDIRECT_URI": redirect_uri,
        "PSC_POST_LOGOUT_REDIRECT_URI": post_logout_redirect_uri,
        "PSC_REQUIRED_ACR": SUBSTANTIAL,
    }


def national_id(rpps: str) -> str:
    """The IdNat_PS PSC gives as SubjectNameID for a professional of the RPPS."""
    return f"8{rpps}"


def authenticate(authorization_url: str, redirect_uri: str, *, login: str, acr: str = SUBSTANTIAL) -> str:
    """What a professional does at the provider: open the authorization URL, fill in the login form (the e-CPS
    step), and come back. Returns the URL the provider sends the browser back to (redirect URI, code, state)."""
    browser = requests.Session()
    form = browser.get(authorization_url, timeout=10)
    assert form.status_code == 200 and "/interaction/" in form.url, form.text[:300]
    response = browser.post(form.url, data={"login": login, "acr": acr}, allow_redirects=False, timeout=10)
    for _ in range(5):
        location = response.headers["Location"]
        if location.startswith(redirect_uri):
            return location
        response = browser.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("the provider did not send the browser back")


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def query_of(url: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


# --- the forger ---------------------------------------------------------------------------------------------


def _b64json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class ForgingRelay:
    """Serves the provider's discovery document with its own token endpoint, forwards token requests to the
    provider and answers with the provider's tokens, the ID token re-signed by a key the provider never
    published (same `kid`, same claims): the hub must refuse its signature."""

    def __init__(self, issuer: str):
        self.issuer = issuer
        self.forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_GET(self):
                with urllib.request.urlopen(f"{relay.issuer}/.well-known/openid-configuration") as answer:  # noqa: S310 (loopback)
                    document = json.load(answer)
                document["token_endpoint"] = f"{relay.url}/token"
                self._answer(200, document)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = requests.post(
                    f"{relay.issuer}/token",
                    data=body,
                    headers={
                        "Authorization": self.headers["Authorization"],
                        "Content-Type": self.headers["Content-Type"],
                    },
                    timeout=10,
                )
                tokens = answer.json()
                if answer.status_code == 200:
                    tokens["id_token"] = relay.forge(tokens["id_token"])
                self._answer(answer.status_code, tokens)

            def _answer(self, status: int, document: dict):
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def forge(self, id_token: str) -> str:
        header_segment, claims_segment, _signature = id_token.split(".")
        header = _b64json(header_segment)
        return jwt.encode(_b64json(claims_segment), self.forged_key, algorithm="RS256", headers={"kid": header["kid"]})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
