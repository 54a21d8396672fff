"""The content-addressed store: uploads checked by their content, and the bytes the hub produces itself (a
rendered PDF, a CDA, a referral letter), stored outside the web root under their SHA-256."""

import hashlib
import re
import secrets
import unicodedata
from pathlib import Path

from hub.errors import ValidationFailed

# Magic bytes → the content type stored and served; nothing else is accepted, whatever the name or header say.
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}


def sniff(content: bytes) -> str | None:
    return next((kind for magic, kind in SIGNATURES if content.startswith(magic)), None)


def sanitise_filename(name: str | None, content_type: str) -> str:
    """A plain file name: no path, no control or shell characters, the extension of the real content."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rsplit(".", 1)[0] if "." in name else name).strip("._")
    return (stem[:150] or "document") + EXTENSIONS[content_type]


def store_upload(upload_dir: Path, content: bytes, filename: str | None, *, max_bytes: int) -> dict:
    """Check and store an upload; returns the ReferralAttachment fields (filename, content_type, size, sha256)."""
    if not content:
        raise ValidationFailed({"file": "Le fichier est vide."})
    if len(content) > max_bytes:
        raise ValidationFailed({"file": f"Le fichier dépasse la taille maximale ({max_bytes // (1024 * 1024)} Mo)."})
    content_type = sniff(content)
    if content_type is None:
        raise ValidationFailed({"file": "Format non accepté : seuls les PDF, PNG et JPEG sont acceptés."})
    return {
        "filename": sanitise_filename(filename, content_type),
        "content_type": content_type,
        "size": len(content),
        "sha256": store_blob(upload_dir, content),
    }


def store_blob(upload_dir: Path, content: bytes) -> str:
    """Store bytes the hub produced itself (a rendered PDF, a CDA) under their SHA-256, written whole or not
    at all; returns the hash. The same bytes stored twice are one file."""
    digest = hashlib.sha256(content).hexdigest()
    path = stored_path(upload_dir, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{secrets.token_hex(4)}.part")
        partial.write_bytes(content)
        partial.replace(path)
    return digest


def stored_path(upload_dir: Path, sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("empreinte invalide")
    return Path(upload_dir) / sha256[:2] / sha256


def read_stored(upload_dir: Path, sha256: str) -> bytes:
    return stored_path(upload_dir, sha256).read_bytes()
