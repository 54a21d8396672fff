"""The MSSanté connector's composition CPU per message (the XDM zip, the MSSanté message's parts and base64): a
signed report's document sent to `--mailboxes` secure mailboxes, `--documents` distinct documents one after the
other, as the drain sends them (a report's messages in one lane, in order). The documents are the tests' usual
report rendered as tonight (the usual glyphs' font embedded whole), each made distinct by a byte; they are stored
in a temporary document store and read back, hash-checked, by `MssanteConnector.compose`, which is timed
(`time.process_time`, no SMTP). Run it in two worktrees, alternately, for an A/B.

    .venv/bin/python bench/mssante_compose.py --documents 30 --mailboxes 3
"""

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from connectors.base import OutgoingMessage  # noqa: E402
from connectors.mssante import MssanteConnector  # noqa: E402
from hub.documents.store import store_blob  # noqa: E402
from tests.connectors.test_xdm import clinical_document, rendered  # noqa: E402
from tests.servers import TestCA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--mailboxes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        cert_file, key_file = TestCA(store).client_cert(store, "hub-app.cpts-test.fr")
        connector = MssanteConnector(
            host="127.0.0.1",
            sender="coordination@cpts-test.mssante.fr",
            upload_dir=store,
            cert_file=str(cert_file),
            key_file=str(key_file),
        )
        messages = _messages(store, args.documents, args.mailboxes)
        started = time.process_time()
        size = sum(len(connector.compose(message)) for message in messages)
        cpu = time.process_time() - started
        connector.close()
    print(
        f"{args.documents} documents × {args.mailboxes} mailboxes: {cpu * 1000 / len(messages):.2f} ms CPU per "
        f"message, {cpu * 1000 / args.documents:.2f} ms per document; {size // len(messages) // 1024} KB per message"
    )


def _messages(store: Path, documents: int, mailboxes: int) -> list[OutgoingMessage]:
    package, files = rendered(clinical_document())
    messages = []
    for number in range(documents):
        # A trailing comment or line: other bytes (no cache hit across documents), the same work.
        ours = {name: content + f"\n<!-- {number} -->\n".encode() for name, content in files.items()}
        renderings = tuple(
            replace(r, sha256=hashlib.sha256(ours[r.filename]).hexdigest(), size=len(ours[r.filename]))
            for r in package.renderings
        )
        for content in ours.values():
            store_blob(store, content)
        payload = json.dumps(replace(package, renderings=renderings).to_payload())
        for mailbox in range(mailboxes):
            recipient = f"pro{mailbox}@test.mssante.fr"
            messages.append(
                OutgoingMessage(
                    id=len(messages),
                    idempotency_key=f"doc:{number}:mssante:{recipient}",
                    channel="mssante",
                    recipient=recipient,
                    kind="document:85208-7",
                    payload=payload,
                )
            )
    return messages


if __name__ == "__main__":
    main()
