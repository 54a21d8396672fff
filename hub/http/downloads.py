"""Files handed to a browser or an API client: always as an attachment, never sniffed, never cached (health
data must not linger in a shared computer's cache), and a stored file only after an audited check."""

from flask import Response
from flask_login import current_user

from hub import audit
from hub.errors import NotFound
from hub.http.request import db, upload_dir
from hub.services import documents


def download(content: bytes, content_type: str, filename: str) -> Response:
    response = Response(content, mimetype=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def stored_attachment(owner, attachment, *, belongs: bool, action: str, table: str, attachment_id: int) -> Response:
    """An uploaded file of `owner` (a referral, a téléexpertise request) the caller may already read: a 404
    when it is not one of the owner's, else its stored bytes; both audited."""
    if attachment is None or not belongs:
        raise NotFound("Document introuvable.", audit_action=action, audit_target=(table, attachment_id))
    audit.record(
        db(),
        actor=current_user,
        action=action,
        target=owner,
        cpts_id=owner.cpts_id,
        details={"attachment_id": attachment.id},
    )
    content = documents.read_stored(upload_dir(), attachment.sha256)
    return download(content, attachment.content_type, attachment.filename)
