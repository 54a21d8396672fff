"""The admin's "Connecteurs": per channel, the CPTS's settings (empty = the server's), on or off, checked with
French messages (port range, files of the CPTS's own directory chosen by name, public https URLs), saved with
an audit line; nothing saved when a field is wrong; secrets never stored."""

import html
import json
import os
from types import MappingProxyType

import pytest
from sqlalchemy import select

from connectors import settings
from connectors.settings import CHANNEL_FIELDS
from hub.models import AuditEvent, ConnectorSetting
from tests import factories


def stored(db_session, cpts, channel):
    db_session.expire_all()
    return db_session.scalar(
        select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts.id, ConnectorSetting.channel == channel)
    )


@pytest.fixture
def files_root(app, tmp_path, monkeypatch):
    """The server's CONNECTOR_FILES_DIR, in the test's own temporary directory."""
    root = tmp_path / "connector-files"
    root.mkdir()
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "CONNECTOR_FILES_DIR": str(root)}))
    return root


def cpts_file(files_root, cpts, name, text="-----BEGIN CERTIFICATE-----\n"):
    directory = files_root / str(cpts.id)
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory / name


@pytest.fixture
def ca_file(files_root, cpts):
    """A CA file the server's operator put in the CPTS's directory."""
    return cpts_file(files_root, cpts, "ca.pem")


def test_the_page_lists_every_channel_and_its_fields(auth, admin):
    auth.login(admin)
    text = html.unescape(auth.client.get("/admin/connecteurs").get_data(as_text=True))
    for channel, fields in CHANNEL_FIELDS.items():
        assert f'action="/admin/connecteurs/{channel}"' in text
        for name, (label, _kind) in fields.items():
            assert f'name="{name}"' in text and label in text
    assert "Non réglé sur le serveur" in text  # the test server has no SMTP


def test_saving_settings_stores_them_with_an_audit_line(auth, db_session, admin, cpts, ca_file):
    auth.login(admin)
    form = {
        "SMTP_HOST": "smtp.cpts-viveval.fr",
        "SMTP_PORT": "465",
        "SMTP_FROM": "coordination@cpts-viveval.fr",
        "SMTP_CA_FILE": "ca.pem",
        "is_enabled": "true",
    }

    response = auth.post("/admin/connecteurs/email", data=form)

    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/connecteurs#c-email")
    row = stored(db_session, cpts, "email")
    assert row.is_enabled and row.updated_by_user_id == admin.id
    assert json.loads(row.settings) == {
        "SMTP_HOST": "smtp.cpts-viveval.fr",
        "SMTP_PORT": 465,
        "SMTP_FROM": "coordination@cpts-viveval.fr",
        "SMTP_CA_FILE": "ca.pem",
    }
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "connector_settings.update")).all()[-1]
    assert event.actor_user_id == admin.id and event.cpts_id == cpts.id
    assert json.loads(event.details)["changed"] == ["SMTP_CA_FILE", "SMTP_FROM", "SMTP_HOST", "SMTP_PORT"]
    page = html.unescape(auth.client.get("/admin/connecteurs").get_data(as_text=True))
    assert 'value="smtp.cpts-viveval.fr"' in page and "Réglages de la CPTS, activé" in page


def test_disabling_a_channel(auth, db_session, admin, cpts):
    auth.login(admin)
    assert auth.post("/admin/connecteurs/sms", data={}).status_code == 302
    row = stored(db_session, cpts, "sms")
    assert not row.is_enabled and json.loads(row.settings) == {}
    assert settings.load_cpts_settings(db_session, [cpts.id]) == {(cpts.id, "sms"): None}
    assert "Désactivé pour la CPTS" in html.unescape(auth.client.get("/admin/connecteurs").get_data(as_text=True))


@pytest.mark.parametrize(
    ("channel", "field", "value", "message"),
    [
        ("email", "SMTP_PORT", "0", "Le port doit être un nombre entier entre 1 et 65535."),
        ("email", "SMTP_PORT", "70000", "Le port doit être un nombre entier entre 1 et 65535."),
        ("email", "SMTP_PORT", "25a", "Le port doit être un nombre entier entre 1 et 65535."),
        ("email", "SMTP_HOST", "smtp exemple.fr", "Nom de serveur invalide"),
        ("email", "SMTP_FROM", "coordination", "Adresse de messagerie invalide"),
        ("email", "SMTP_CA_FILE", "/nulle/part/ca.pem", "Choisissez un fichier dans la liste"),
        ("email", "SMTP_CA_FILE", "/etc", "Choisissez un fichier dans la liste"),
        ("email", "SMTP_CA_FILE", "autre.pem", "Choisissez un fichier dans la liste"),
        ("dmp", "DMP_URL", "http://dmp.exemple.fr/fhir", "L'adresse doit commencer par https://"),
        ("dmp", "DMP_URL", "https://", "Adresse invalide"),
        ("dmp", "DMP_URL", "https://moi:secret@dmp.exemple.fr/", "Adresse invalide"),
        ("sms", "SMS_SENDER", "x" * 201, "Au plus 200 caractères."),
    ],
)
def test_a_wrong_field_gets_a_french_message_and_nothing_is_saved(
    auth, db_session, admin, cpts, ca_file, channel, field, value, message
):
    auth.login(admin)
    valid = {"email": {"SMTP_HOST": "smtp.exemple.fr"}, "dmp": {"DMP_CA_FILE": "ca.pem"}, "sms": {}}[channel]

    response = auth.post(f"/admin/connecteurs/{channel}", data={**valid, field: value, "is_enabled": "true"})

    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert message in text and f'id="e-{field}"' in text
    assert stored(db_session, cpts, channel) is None
    assert not db_session.scalars(select(AuditEvent).where(AuditEvent.action == "connector_settings.update")).all()


def test_an_unreadable_file_is_refused(tmp_path, ca_file):
    ca_file.chmod(0o000)
    try:
        if os.access(ca_file, os.R_OK):
            pytest.skip("running as root: every file is readable")
        with pytest.raises(settings.ValidationFailed) as refused:
            settings.validate("email", {"SMTP_CA_FILE": "ca.pem"}, settings.Scope(ca_file.parent))
        assert refused.value.errors["SMTP_CA_FILE"].startswith("Ce fichier n'est pas lisible par le hub")
    finally:
        ca_file.chmod(0o600)


def test_secrets_and_undeclared_fields_are_never_stored(auth, db_session, admin, cpts):
    auth.login(admin)
    form = {"SMTP_HOST": "smtp.exemple.fr", "SMTP_PASSWORD": "motdepasse", "SMTP_USERNAME": "moi", "is_enabled": "on"}
    assert auth.post("/admin/connecteurs/email", data=form).status_code == 302
    row = stored(db_session, cpts, "email")
    assert json.loads(row.settings) == {"SMTP_HOST": "smtp.exemple.fr"}
    assert "motdepasse" not in row.settings


def test_settings_stay_within_the_admins_cpts(auth, db_session, admin, cpts):
    auth.login(admin)
    assert auth.post("/admin/connecteurs/email", data={"SMTP_HOST": "smtp.exemple.fr"}).status_code == 302
    assert db_session.scalars(select(ConnectorSetting.cpts_id)).all() == [cpts.id]


def test_an_unknown_channel_is_not_found(auth, admin):
    auth.login(admin)
    assert auth.post("/admin/connecteurs/pigeon", data={}).status_code == 404


def test_editing_replaces_the_previous_settings(auth, db_session, admin, cpts):
    auth.login(admin)
    auth.post("/admin/connecteurs/email", data={"SMTP_HOST": "a.exemple.fr", "SMTP_PORT": "25", "is_enabled": "true"})
    auth.post("/admin/connecteurs/email", data={"SMTP_HOST": "b.exemple.fr", "is_enabled": "true"})
    row = stored(db_session, cpts, "email")
    assert json.loads(row.settings) == {"SMTP_HOST": "b.exemple.fr"}
    details = [
        json.loads(e.details)
        for e in db_session.scalars(select(AuditEvent).where(AuditEvent.action == "connector_settings.update"))
    ]
    assert details[-1]["changed"] == ["SMTP_HOST", "SMTP_PORT"]
    assert db_session.scalars(select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts.id)).all() == [row]


# --- what a CPTS's settings may designate: its own files, public hosts -------------------------------------

REFUSED_FILE = "Choisissez un fichier dans la liste des fichiers de la CPTS."
NOT_PUBLIC = "Adresse refusée : ce serveur n'est pas public"


def refusal(response, field) -> str:
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    start = text.index(f'id="e-{field}">') + len(f'id="e-{field}">')
    return text[start : text.index("<", start)]


def test_the_page_offers_only_the_cpts_own_files_by_name(auth, db_session, admin, cpts, files_root, tmp_path):
    other = factories.cpts(db_session)
    cpts_file(files_root, cpts, "structure.crt")
    cpts_file(files_root, cpts, "structure.key")
    theirs = cpts_file(files_root, other, "leur-cle.key")
    (files_root / str(cpts.id) / "vers-leur-cle.key").symlink_to(theirs)
    auth.login(admin)

    page = html.unescape(auth.client.get("/admin/connecteurs").get_data(as_text=True))

    assert '<option value="structure.crt">structure.crt</option>' in page
    assert '<option value="structure.key">structure.key</option>' in page
    assert "leur-cle" not in page, "another CPTS's file, even through a symlink, is not offered"
    assert str(files_root) not in page and str(tmp_path) not in page, "no server path on the page"

    saved = auth.post("/admin/connecteurs/mssante", data={"MSSANTE_CERT_FILE": "structure.crt", "is_enabled": "true"})
    assert saved.status_code == 302
    assert json.loads(stored(db_session, cpts, "mssante").settings) == {"MSSANTE_CERT_FILE": "structure.crt"}


@pytest.mark.parametrize(
    "value",
    ["leur-cle.key", "../{other}/leur-cle.key", "{other_dir}/leur-cle.key", "vers-leur-cle.key", "/etc/passwd"],
)
def test_an_admin_cannot_choose_another_cpts_file_nor_type_a_path(auth, db_session, admin, cpts, files_root, value):
    other = factories.cpts(db_session)
    theirs = cpts_file(files_root, other, "leur-cle.key")
    cpts_file(files_root, cpts, "structure.crt")
    (files_root / str(cpts.id) / "vers-leur-cle.key").symlink_to(theirs)
    auth.login(admin)
    form = {"MSSANTE_CERT_FILE": "structure.crt", "is_enabled": "true"}

    value = value.format(other=other.id, other_dir=theirs.parent)
    response = auth.post("/admin/connecteurs/mssante", data={**form, "MSSANTE_KEY_FILE": value})

    assert refusal(response, "MSSANTE_KEY_FILE") == REFUSED_FILE
    assert stored(db_session, cpts, "mssante") is None


def test_the_answer_does_not_tell_whether_a_path_exists(auth, admin, files_root, tmp_path):
    existing = tmp_path / "secret.pem"
    existing.write_text("x")
    auth.login(admin)

    answers = [
        auth.post("/admin/connecteurs/email", data={"SMTP_CA_FILE": path, "is_enabled": "true"})
        for path in (str(existing), str(tmp_path / "absent.pem"), str(tmp_path))
    ]

    assert {(a.status_code, refusal(a, "SMTP_CA_FILE")) for a in answers} == {(422, REFUSED_FILE)}


def test_a_path_saved_before_files_were_chosen_by_name_is_flagged_and_not_shown(auth, db_session, admin, cpts):
    legacy = {"DMP_URL": "https://dmp.exemple.fr/fhir", "DMP_CERT_FILE": "/srv/hub/autre-cpts/structure.crt"}
    db_session.add(ConnectorSetting(cpts_id=cpts.id, channel="dmp", settings=json.dumps(legacy)))
    db_session.flush()
    auth.login(admin)

    page = html.unescape(auth.client.get("/admin/connecteurs").get_data(as_text=True))

    assert 'id="w-DMP_CERT_FILE"' in page and "Le fichier enregistré n'est plus utilisable" in page
    assert "/srv/hub/autre-cpts" not in page
    assert 'id="w-DMP_KEY_FILE"' not in page


@pytest.mark.parametrize(
    ("channel", "field", "value"),
    [
        ("webhook", "WEBHOOK_URL", "https://127.0.0.1/hooks"),
        ("webhook", "WEBHOOK_URL", "https://169.254.169.254/latest/meta-data/"),
        ("webhook", "WEBHOOK_URL", "https://localhost/hooks"),
        ("webhook", "WEBHOOK_URL", "https://[::1]/hooks"),
        ("webhook", "WEBHOOK_URL", "https://[fe80::1]/hooks"),
        ("webhook", "WEBHOOK_URL", "https://[::ffff:127.0.0.1]/hooks"),
        ("webhook", "WEBHOOK_URL", "https://2130706433/hooks"),
        ("dmp", "DMP_URL", "https://169.254.169.254/"),
        ("dmp", "DMP_URL", "https://10.0.0.8/fhir"),
        ("dmp", "DMP_URL", "https://192.168.1.20:8443/fhir"),
        ("dmp", "DMP_URL", "https://0.0.0.0/fhir"),
        ("sms", "SMS_API_URL", "https://224.0.0.1/v1/sms"),
        ("sms", "SMS_API_URL", "https://240.0.0.1/v1/sms"),
        ("sms", "SMS_API_URL", "https://100.64.0.1/v1/sms"),
        ("email", "SMTP_HOST", "localhost"),
        ("email", "SMTP_HOST", "127.0.0.1"),
        ("mssante", "MSSANTE_IMAP_HOST", "169.254.169.254"),
    ],
)
def test_an_address_that_is_not_public_is_refused(auth, db_session, admin, cpts, channel, field, value):
    auth.login(admin)

    response = auth.post(f"/admin/connecteurs/{channel}", data={field: value, "is_enabled": "true"})

    assert refusal(response, field).startswith(NOT_PUBLIC)
    assert stored(db_session, cpts, channel) is None


def test_a_plain_http_address_is_refused(auth, db_session, admin, cpts):
    auth.login(admin)
    response = auth.post("/admin/connecteurs/webhook", data={"WEBHOOK_URL": "http://127.0.0.1/", "is_enabled": "true"})
    assert refusal(response, "WEBHOOK_URL").startswith("L'adresse doit commencer par https://")
    assert stored(db_session, cpts, "webhook") is None


def test_a_public_address_is_kept(auth, db_session, admin, cpts):
    auth.login(admin)
    form = {"DMP_URL": "https://203.0.114.7/fhir", "is_enabled": "true"}  # not a documentation range: public
    assert auth.post("/admin/connecteurs/dmp", data=form).status_code == 302
    assert json.loads(stored(db_session, cpts, "dmp").settings) == {"DMP_URL": "https://203.0.114.7/fhir"}


def test_a_server_that_allows_private_hosts_accepts_them(app, auth, db_session, admin, cpts, monkeypatch):
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1}))
    auth.login(admin)
    form = {"WEBHOOK_URL": "https://127.0.0.1:8443/hooks", "is_enabled": "true"}
    assert auth.post("/admin/connecteurs/webhook", data=form).status_code == 302
    assert json.loads(stored(db_session, cpts, "webhook").settings) == {"WEBHOOK_URL": "https://127.0.0.1:8443/hooks"}
