import pytest

from hub.models import Profession, Role
from hub.services import accounts
from tests import factories


class ApiClient:
    """The test client with a personal access token, as an outside program would call the API."""

    def __init__(self, client, raw_token):
        self.client = client
        self.headers = {"Authorization": f"Bearer {raw_token}"}

    def get(self, url, **kwargs):
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url, json=None, **kwargs):
        return self.client.post(url, headers=self.headers, json=json, **kwargs)

    def patch(self, url, json=None, **kwargs):
        return self.client.patch(url, headers=self.headers, json=json, **kwargs)


@pytest.fixture
def api_as(client, db_session):
    def make(user):
        _row, raw = accounts.create_api_token(db_session, user, name="tests")
        db_session.commit()
        return ApiClient(client, raw)

    return make


@pytest.fixture
def gp(db_session, cpts):
    professional = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    return factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=professional)


@pytest.fixture
def nurse(db_session, cpts):
    return factories.user(db_session, cpts, Role.PROFESSIONAL)


@pytest.fixture
def coordinator(db_session, cpts):
    professional = factories.professional(db_session, cpts, Profession.COORDINATOR)
    return factories.user(db_session, cpts, Role.COORDINATOR, professional_row=professional)


@pytest.fixture
def admin(db_session, cpts):
    return factories.user(db_session, cpts, Role.ADMIN)
