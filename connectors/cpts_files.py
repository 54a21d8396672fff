"""The certificate, key and CA files a CPTS's connectors may use: those the server's operator put in the CPTS's
own directory (`CONNECTOR_FILES_DIR/<cpts id>/`), chosen by name, never a path.

A CPTS's admin thus cannot point a connector at another CPTS's private key or at any file of the server,
nor learn whether a path exists. A name is resolved under the CPTS's directory each time a connector is built;
a name that leaves it (`..`, a separator, an absolute path, a symlink pointing outside) is refused.
"""

from collections.abc import Mapping
from pathlib import Path

from hub.config import PROJECT_ROOT

FILES_DIR = "CONNECTOR_FILES_DIR"


class UnusableFile(ValueError):
    """The name designates no file of the CPTS's directory."""


def files_root(config: Mapping) -> Path:
    return Path(config.get(FILES_DIR) or PROJECT_ROOT / "instance" / "connector-files")


def cpts_directory(config: Mapping, cpts_id: int) -> Path:
    return files_root(config) / str(int(cpts_id))


def available_files(directory: Path) -> list[str]:
    """The names a CPTS's admin may choose: regular files of its directory that stay inside it."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return sorted(entry.name for entry in entries if _is_plain_name(entry.name) and _stays_inside(directory, entry))


def resolve(directory: Path, name: str) -> Path:
    """The file `name` designates in `directory`; raises UnusableFile for anything else (a path stored before
    files were chosen by name included)."""
    if not _is_plain_name(name) or not _stays_inside(directory, directory / name):
        raise UnusableFile(name)
    return (directory / name).resolve()


def _is_plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in ("/", "\\", "\x00"))


def _stays_inside(directory: Path, path: Path) -> bool:
    try:
        root = directory.resolve(strict=True)
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False
    return target.is_relative_to(root) and target.is_file()
