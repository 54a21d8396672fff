"""The proxy's health check (deploy/haproxy.cfg, docs/deployment.md): polled every second on each node."""

from tests.queries import count_queries


def test_the_health_check_answers_without_touching_the_database(client, engine):
    """No statement at all, so no audit row and no session: a probe a second costs nothing, and a PostgreSQL
    restart does not take both nodes out of the proxy at once."""
    with count_queries(engine) as statements:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert statements == []
    assert "Set-Cookie" not in response.headers
