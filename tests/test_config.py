"""Start-up checks of the configuration that touch the host: the upload directory in production."""

import pytest

from hub.config import ConfigError, load_config

PRODUCTION = {"ENV": "production", "SECRET_KEY": "x" * 40, "AUDIT_KEY": "k" * 40, "DATABASE_URL": "sqlite:///:memory:"}


def test_production_refuses_a_missing_upload_directory_rather_than_making_a_local_one(tmp_path):
    """The worker renders every report into HUB_UPLOAD_DIR and the web nodes serve from it: a shared mount that is
    not there must stop the start, not be replaced by an empty local directory."""
    missing = tmp_path / "nfs" / "uploads"
    with pytest.raises(ConfigError, match=r"HUB_UPLOAD_DIR .* n'est pas un répertoire existant"):
        load_config(tmp_path, PRODUCTION | {"UPLOAD_DIR": str(missing)})
    assert not missing.exists()
    missing.mkdir(parents=True)
    assert load_config(tmp_path, PRODUCTION | {"UPLOAD_DIR": str(missing)})["UPLOAD_DIR"] == str(missing)


def test_production_refuses_an_upload_directory_it_cannot_write(tmp_path):
    # sysfs: no process may create a file there, root included (the tests may run as root, which chmod won't stop).
    with pytest.raises(ConfigError, match="HUB_UPLOAD_DIR /sys is not writable / n'est pas modifiable"):
        load_config(tmp_path, PRODUCTION | {"UPLOAD_DIR": "/sys"})
    regular_file = tmp_path / "uploads.txt"
    regular_file.write_text("")
    with pytest.raises(ConfigError, match="n'est pas un répertoire"):
        load_config(tmp_path, PRODUCTION | {"UPLOAD_DIR": str(regular_file)})


def test_the_default_upload_directory_is_the_instance_one_created_at_start_up(tmp_path):
    assert load_config(tmp_path, PRODUCTION)["UPLOAD_DIR"] == str(tmp_path / "uploads")
    assert (tmp_path / "uploads").is_dir()
    testing = load_config(tmp_path / "other", PRODUCTION | {"ENV": "testing", "UPLOAD_DIR": str(tmp_path / "absent")})
    assert testing["UPLOAD_DIR"] == str(tmp_path / "absent"), "checked in production only"
