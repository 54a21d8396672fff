"""Stored files handed back to a reader (a referral's or a téléexpertise request's attachment, a signed report's
PDF): only to someone who may read their owner — the caller has loaded it through its policy — and every read
audited. The web page and the API send the same bytes under the same name."""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from hub import audit
from hub.documents import store
from hub.errors import NotFound
from hub.models import Actor


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    content_type: str
    filename: str


def read_attachment(
    session: Session, actor: Actor, owner, attachment, *, requested_id: int, action: str, table: str, upload_dir: Path
) -> StoredFile:
    """An uploaded file of `owner` the actor may read (`attachment`: None when the requested id is missing or
    not one of the owner's): a 404 as if absent, audited, or its stored bytes, the read audited."""
    if attachment is None:
        raise NotFound("Document introuvable.", audit_action=action, audit_target=(table, requested_id))
    audit.record(
        session,
        actor=actor,
        action=action,
        target=owner,
        cpts_id=owner.cpts_id,
        details={"attachment_id": attachment.id},
    )
    content = store.read_stored(upload_dir, attachment.sha256)
    return StoredFile(content, attachment.content_type, attachment.filename)
