"""Freezing a signed document: its renderings made once and stored under their hash."""

from pathlib import Path

from hub.documents.cda import build_cda
from hub.documents.clinical import ClinicalDocument, DocumentPackage, StoredRendering
from hub.documents.pdf import render_pdf
from hub.documents.store import store_blob


def freeze(document: ClinicalDocument, upload_dir: Path, *, zone: str) -> DocumentPackage:
    """Render the PDF and the CDA once, their times in the territory's `zone`, and store both under their
    hash: every delivery and every re-send then carries the same bytes, and the signed version cannot drift
    from what was sent."""
    pdf = render_pdf(document, zone=zone)
    cda = build_cda(document, pdf, zone=zone)
    return DocumentPackage(
        document=document,
        renderings=(
            StoredRendering("cda", "text/xml", store_blob(upload_dir, cda), len(cda), "DOC0001.XML"),
            StoredRendering("pdf", "application/pdf", store_blob(upload_dir, pdf), len(pdf), "DOC0001.PDF"),
        ),
    )
