import hashlib

import pytest

from hub.documents import store
from hub.errors import ValidationFailed

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


@pytest.mark.parametrize(("content", "kind"), [(PDF, "application/pdf"), (PNG, "image/png"), (JPEG, "image/jpeg")])
def test_a_pdf_or_an_image_is_stored_under_its_hash(tmp_path, content, kind):
    stored = store.store_upload(tmp_path, content, "résultats bio.PDF", max_bytes=1024)
    digest = hashlib.sha256(content).hexdigest()
    assert stored == {
        "filename": "resultats_bio" + store.EXTENSIONS[kind],
        "content_type": kind,
        "size": len(content),
        "sha256": digest,
    }
    assert (tmp_path / digest[:2] / digest).read_bytes() == content


@pytest.mark.parametrize(
    "content", [b"Ceci n'est pas un PDF", b"<html><script>alert(1)</script></html>", b"MZ\x90\x00"]
)
def test_anything_else_is_refused_whatever_its_name(tmp_path, content):
    with pytest.raises(ValidationFailed) as refused:
        store.store_upload(tmp_path, content, "ordonnance.pdf", max_bytes=1024)
    assert refused.value.errors["file"] == "Format non accepté : seuls les PDF, PNG et JPEG sont acceptés."
    assert list(tmp_path.iterdir()) == []


def test_an_oversized_or_empty_file_is_refused(tmp_path):
    with pytest.raises(ValidationFailed, match="invalides") as refused:
        store.store_upload(tmp_path, PDF + b"x" * 2000, "gros.pdf", max_bytes=1024)
    assert "taille maximale" in refused.value.errors["file"]
    with pytest.raises(ValidationFailed):
        store.store_upload(tmp_path, b"", "vide.pdf", max_bytes=1024)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd.pdf"),
        ("C:\\temp\\a b.exe", "a_b.pdf"),
        ("", "document.pdf"),
        (".pdf", "document.pdf"),
    ],
)
def test_the_filename_is_sanitised(tmp_path, name, expected):
    assert store.store_upload(tmp_path, PDF, name, max_bytes=1024)["filename"] == expected


def test_a_forged_hash_never_leaves_the_upload_directory(tmp_path):
    with pytest.raises(ValueError):
        store.stored_path(tmp_path, "../" * 10 + "etc/passwd")
