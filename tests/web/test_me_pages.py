import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import ApiToken, Role
from hub.services import accounts
from tests import factories


def field_error(body: str, name: str) -> str:
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return found.group(1) if found else ""


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def test_tokens_page(auth, db_session, nurse):
    accounts.create_api_token(db_session, nurse, name="Logiciel du cabinet")
    db_session.commit()
    auth.login(nurse)
    body = auth.client.get("/me/tokens").get_data(as_text=True)
    assert "Mes jetons d&#39;accès à l&#39;API" in body or "Mes jetons d'accès à l'API" in body
    assert "Logiciel du cabinet" in body and "hubpat_" in body and "jamais" in body
    assert 'for="f-name"' in body and 'type="date"' in body


def test_created_token_is_shown_once_and_works_until_revoked(auth, client, db_session, nurse):
    auth.login(nurse)
    response = auth.post("/me/tokens", {"name": "Agenda du cabinet"})
    body = response.get_data(as_text=True)
    assert response.status_code == 201
    raw = re.search(r'value="(hubpat_[^"]+)"', body).group(1)
    assert "il ne sera plus jamais affiché" in body and "Authorization: Bearer &lt;jeton&gt;" in body
    assert raw not in auth.client.get("/me/tokens").get_data(as_text=True)

    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    assert client.get("/api/v1/patients", headers=bearer(raw)).status_code == 200

    token = db_session.scalar(select(ApiToken).where(ApiToken.user_id == nurse.id))
    response = auth.post(f"/me/tokens/{token.id}/revoke")
    assert response.status_code == 302 and response.headers["Location"] == "/me/tokens"
    assert "révoqué" in auth.client.get("/me/tokens").get_data(as_text=True)
    assert client.get("/api/v1/patients", headers=bearer(raw)).status_code == 401


def test_token_with_an_expiry_day(auth, db_session, nurse):
    auth.login(nurse)
    day = (utcnow() + dt.timedelta(days=30)).date()
    assert auth.post("/me/tokens", {"name": "Court", "expires_on": day.isoformat()}).status_code == 201
    token = db_session.scalar(select(ApiToken).where(ApiToken.user_id == nurse.id))
    local = token.expires_at.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert token.expires_at > utcnow() + dt.timedelta(days=29)
    assert local.date() in (day, day + dt.timedelta(days=1)), "the end of the chosen day, Paris time"


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": ""}, "name", "Ce champ est obligatoire."),
        (
            {"name": "Ancien", "expires_on": "2020-01-01"},
            "expires_on",
            "La date d&#39;expiration doit être dans le futur.",
        ),
        ({"name": "Mal daté", "expires_on": "demain"}, "expires_on", "Date invalide"),
    ],
)
def test_bad_token_is_refused(auth, db_session, nurse, form, field, message):
    auth.login(nurse)
    response = auth.post("/me/tokens", form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert db_session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_another_users_token_cannot_be_revoked(auth, db_session, cpts, nurse):
    other = factories.user(db_session, cpts, Role.PROFESSIONAL)
    token, _raw = accounts.create_api_token(db_session, other, name="À lui")
    db_session.commit()
    auth.login(nurse)
    assert auth.post(f"/me/tokens/{token.id}/revoke").status_code == 404
    db_session.refresh(token)
    assert token.revoked_at is None


def test_every_role_manages_its_tokens(auth, db_session, cpts):
    auth.login(factories.user(db_session, cpts, Role.ADMIN))
    assert auth.client.get("/me/tokens").status_code == 200


def test_tokens_page_needs_login(client):
    response = client.get("/me/tokens")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
