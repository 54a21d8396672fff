"""Files handed to a browser or an API client: always as an attachment, never sniffed, never cached (health
data must not linger in a shared computer's cache). The workflows check and audit the read first."""

from flask import Response

from workflows.attachments import StoredFile


def download(content: bytes, content_type: str, filename: str) -> Response:
    response = Response(content, mimetype=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def send(file: StoredFile) -> Response:
    return download(file.content, file.content_type, file.filename)
