"""Uploaded files, from a page's form or the API's multipart body."""

from flask import current_app


def upload_limit() -> int:
    return current_app.config["HUB"]["UPLOAD_MAX_BYTES"]


def read_upload(upload) -> bytes:
    """At most one byte over the limit (enough for the workflow to refuse a file too large without reading
    it all); the upload's spooled file is closed at once."""
    try:
        return upload.stream.read(upload_limit() + 1)
    finally:
        upload.close()
