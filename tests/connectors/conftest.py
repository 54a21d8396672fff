import pytest

from connectors.registry import build_registry
from tests.servers import SmtpServer


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
