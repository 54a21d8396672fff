from tests.api.test_patients_api import assert_problem


def test_oversized_body_is_413_problem(api_as, gp, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = '{"birth_name": "' + "x" * (limit + 1) + '"}'
    client = api_as(gp)
    response = client.client.post(
        "/api/v1/patients", data=body, headers=client.headers | {"Content-Type": "application/json"}
    )
    assert_problem(response, 413)
