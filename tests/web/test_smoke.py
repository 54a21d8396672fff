from tests import factories


def test_login_page_is_public_and_french(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "Connexion" in response.get_data(as_text=True)


def test_home_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_logged_in_home(auth, db_session, cpts):
    user = factories.coordinator(db_session, cpts)
    auth.login(user)
    response = auth.client.get("/")
    assert response.status_code == 200
    assert user.display_name in response.get_data(as_text=True)
