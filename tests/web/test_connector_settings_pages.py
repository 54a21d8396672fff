"""The admin's "Connecteurs": per channel, the CPTS's settings (empty = the server's), on or off, checked with
French messages (port range, files that exist on the server, https URLs), saved with an audit line; nothing
saved when a field is wrong; secrets never stored."""

import html
import json
import os

import pytest
from sqlalchemy import select

from connectors import settings
from connectors.settings import CHANNEL_FIELDS
from hub.models import AuditEvent, ConnectorSetting


def stored(db_session, cpts, channel):
    db_session.expire_all()
    return db_session.scalar(
        select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts.id, ConnectorSetting.channel == channel)
    )


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


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
        "SMTP_CA_FILE": str(ca_file),
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
        "SMTP_CA_FILE": str(ca_file),
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
        ("email", "SMTP_CA_FILE", "/nulle/part/ca.pem", "Ce fichier n'existe pas sur le serveur."),
        ("email", "SMTP_CA_FILE", "/etc", "Ce fichier n'existe pas sur le serveur."),
        ("email", "SMTP_CA_FILE", "ca.pem", "Indiquez un chemin absolu sur le serveur"),
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
    valid = {"email": {"SMTP_HOST": "smtp.exemple.fr"}, "dmp": {"DMP_CA_FILE": str(ca_file)}, "sms": {}}[channel]

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
            settings.validate("email", {"SMTP_CA_FILE": str(ca_file)})
        assert refused.value.errors == {"SMTP_CA_FILE": "Ce fichier n'est pas lisible par le hub sur le serveur."}
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
