import pytest

from connectors.registry import build_registry
from tests.servers import SmtpServer, TestCA


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def smtp_server(test_ca):
    """An SMTP server on loopback that requires STARTTLS, with a certificate from the test CA."""
    with SmtpServer(tls_context=test_ca.server_context()) as server:
        yield server


@pytest.fixture
def smtp_config(smtp_server, test_ca):
    return smtp_server.config(test_ca.ca_file)


@pytest.fixture
def email_connectors(smtp_config):
    return build_registry(smtp_config)


@pytest.fixture
def sessions(app, db_session):
    """The session factory the dispatcher uses, inside the test's rolled-back transaction."""
    return app.extensions["hub.sessions"]
