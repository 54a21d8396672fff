"""The document package as the outbox and the signature's frozen content carry it (DocumentPackage.to_payload)."""

import dataclasses
import datetime as dt
import json

from hub.documents.clinical import DocumentPackage, StoredRendering
from tests.documents.test_pdf import clinical_document

PDF = StoredRendering(role="pdf", mime="application/pdf", sha256="ab" * 32, size=1234, filename="DOC0001.PDF")


def as_asdict_gave_it(value):
    """The payload's members as to_payload wrote them from dataclasses.asdict (before issue 17, P7)."""
    if isinstance(value, dict):
        return {key: as_asdict_gave_it(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_asdict_gave_it(item) for item in value]
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def test_the_payload_is_the_packages_fields_in_order_and_reads_back_as_the_package():
    package = DocumentPackage(clinical_document(replaces_uid="1.2.3", set_id="1.2.4"), renderings=(PDF,))
    payload = package.to_payload()
    expected = {"package": as_asdict_gave_it(dataclasses.asdict(package))}
    assert json.dumps(payload) == json.dumps(expected), "same members, same order: the frozen content's hash"
    assert DocumentPackage.from_payload(json.loads(json.dumps(payload))) == package
