"""A real IMAP server on loopback for the MDN reader: a private Dovecot instance (Debian's dovecot-imapd).

It runs in the foreground under its own temporary configuration — base and state directories, a maildir
store, a passwd-file with one plain-password user, STARTTLS on a certificate from the test CA, its log in a
file, a free unprivileged port on 127.0.0.1 — and is stopped (SIGTERM) on exit. Under root, Dovecot
refuses to run its login processes as root: they run as Debian's `dovenull` and `dovecot` users, and the
mail as `dovecot`; otherwise everything runs as the current user, with no chroot (which needs root).
"""

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers import TestCA, free_port

DOVECOT = "/usr/sbin/dovecot"
USER = "hub-app"
PASSWORD = "mdn-test-password"


def dovecot_available() -> bool:
    return os.access(DOVECOT, os.X_OK)


class ImapServer:
    def __init__(self, ca: TestCA, *, starttls: bool = True):
        """Without `starttls`, the server offers no TLS at all: a reader must refuse it (S16)."""
        self.ca = ca
        self.starttls = starttls
        self.host = "127.0.0.1"
        self.port = free_port()
        self.imaps_port = free_port() if starttls else 0  # implicit TLS (IMAPS) beside STARTTLS
        # Not under pytest's tmp_path: under root, the unprivileged login processes must reach it, and
        # the unix socket paths under it must stay short.
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root.chmod(0o755)
        self.log_file = self.root / "dovecot.log"
        self.process: subprocess.Popen | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> "ImapServer":
        try:
            for attempt in range(3):
                self._write_config()
                with self.log_file.open("ab") as errors:
                    self.process = subprocess.Popen(
                        [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=errors
                    )
                if self._wait_ready():
                    return self
                self.process = None
                if attempt == 2 or "Address already in use" not in self.log():
                    raise RuntimeError(f"dovecot stopped at start:\n{self.log()}")
                # Another process took a free port in between: try others.
                self.port, self.imaps_port = free_port(), free_port() if self.starttls else 0
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        """True when the greeting comes (the port alone may open before the auth process is up), False
        when dovecot stopped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as probe:
                if probe.recv(200).startswith(b"* OK"):
                    return True
            time.sleep(0.1)
        raise RuntimeError(f"dovecot not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # --- configuration --------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        internal_user, login_user, mail_user = _users()
        mail_uid, mail_gid = pwd.getpwnam(mail_user).pw_uid, pwd.getpwnam(mail_user).pw_gid
        mail_root = self.root / "mail"
        mail_root.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(mail_root, mail_uid, mail_gid)
        issued = self.ca.ca.issue_cert(self.host, "localhost")
        cert_file, key_file = self.root / "server.crt", self.root / "server.key"
        issued.cert_chain_pems[0].write_to_path(str(cert_file))
        issued.private_key_pem.write_to_path(str(key_file))
        passwd = self.root / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{mail_uid}:{mail_gid}::{mail_root / USER}\n")
        passwd.chmod(0o644)
        (self.root / "dovecot.conf").write_text(
            CONFIG.format(
                ssl=SSL.format(cert_file=cert_file, key_file=key_file) if self.starttls else "ssl = no",
                root=self.root,
                port=self.port,
                imaps_port=self.imaps_port,
                passwd=passwd,
                internal_user=internal_user,
                internal_group=grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name,
                login_user=login_user,
                mail_uid=mail_uid,
            )
        )

    # --- what the tests use -----------------------------------------------------------------------------------

    def settings(self, **overrides) -> dict:
        """The hub settings that point the MDN reader at this server."""
        return {
            "MSSANTE_IMAP_HOST": self.host,
            "MSSANTE_IMAP_PORT": self.port,
            "MSSANTE_IMAP_USER": USER,
            "MSSANTE_IMAP_PASSWORD": PASSWORD,
            "MSSANTE_CA_FILE": str(self.ca.ca_file),
        } | overrides

    @contextlib.contextmanager
    def client(self):
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.starttls(ssl_context=ssl.create_default_context(cafile=str(self.ca.ca_file)))
            imap.login(USER, PASSWORD)
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def deliver(self, *messages: bytes) -> None:
        """Put messages in INBOX, unread, as the operator's server delivers them."""
        with self.client() as imap:
            for raw in messages:
                status, _ = imap.append("INBOX", None, None, raw)
                assert status == "OK"

    def unseen(self) -> int:
        with self.client() as imap:
            imap.select("INBOX", readonly=True)
            _, data = imap.search(None, "UNSEEN")
            return len(data[0].split())

    def clear(self) -> None:
        with self.client() as imap:
            imap.select("INBOX")
            _, data = imap.search(None, "ALL")
            if data[0]:
                imap.store(b",".join(data[0].split()).decode(), "+FLAGS.SILENT", r"(\Deleted)")
                imap.expunge()


def _users() -> tuple[str, str, str]:
    """(internal user, login user, mail user)."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, me
    return "dovecot", "dovenull", "dovecot"


SSL = """\
ssl = required
ssl_cert = <{cert_file}
ssl_key = <{key_file}
ssl_min_protocol = TLSv1.2"""

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {mail_uid}
last_valid_uid = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service auth-worker {{
  user = $default_internal_user
}}
service anvil {{
  chroot =
}}
"""
