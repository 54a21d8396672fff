import pytest

from tests.api.test_patients_api import assert_problem


def test_oversized_body_is_413_problem(api_as, gp, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = '{"birth_name": "' + "x" * (limit + 1) + '"}'
    client = api_as(gp)
    response = client.client.post(
        "/api/v1/patients", data=body, headers=client.headers | {"Content-Type": "application/json"}
    )
    assert_problem(response, 413)


@pytest.mark.parametrize("url", ["/api/v1/patients/99999999999999999999", "/api/v1/reports/2147483648"])
def test_an_id_beyond_the_integer_range_is_an_unknown_id(api_as, coordinator, url):
    response = api_as(coordinator).get(url)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_largest_row_id_is_still_routed(api_as, coordinator):
    response = api_as(coordinator).get("/api/v1/patients/2147483647")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
