import pytest

from hub.services import accounts


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

    def put(self, url, json=None, **kwargs):
        return self.client.put(url, headers=self.headers, json=json, **kwargs)


@pytest.fixture
def api_as(client, db_session):
    def make(user):
        _row, raw = accounts.create_api_token(db_session, user, name="tests")
        db_session.commit()
        return ApiClient(client, raw)

    return make
