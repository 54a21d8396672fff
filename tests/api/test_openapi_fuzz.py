"""I1: every operation of /api/v1/openapi.json fuzzed by schemathesis, as a coordinator and as an IDEL, with all
its checks: no server error, every status, content type, header and body as the document declares them.

The requests go to the Flask app in process and share the test's rolled-back transaction (`db_session`), so the
fuzzing leaves nothing behind. Deterministic (a fixed seed, derandomised Hypothesis) and bounded: a few examples
per operation, so the module runs in a couple of minutes on SQLite."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from hub import create_app
from hub.api.openapi import build_document
from hub.services import accounts
from tests import conftest, factories

EXAMPLES_PER_OPERATION = 10

CONFIG = {
    "seed": 20260413,
    "generation": {
        "max-examples": EXAMPLES_PER_OPERATION,
        "deterministic": True,
        "database": "none",
        # The token is the test's (a real one), not a generated Authorization header.
        "with-security-parameters": False,
    },
    "phases": {"stateful": {"enabled": False}},
    # Rules beyond the shape a JSON schema states (a birth place required for a birth in France, a valid
    # RRULE, every question of the HAS checklist answered, the document of a document check, an attachment's
    # type read from its bytes) are 422s with a French message per field for data the document accepts.
    "operations": [
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}},
        }
        for operation in (
            "create_patient",
            "update_patient",
            "create_referral",
            "create_teleexpertise",
            "add_identity_check",
            "add_consent",  # a consent collected in the future
            "assess_eligibility",
            "create_program",
            "update_program",
            # A name already in service, an organisation of another CPTS; a resource retired twice.
            "create_resource",
            "update_resource",
            "retire_resource",
            # A place the program cannot hold, needs outside the referrals' words, a referral not accepted.
            "add_waiting",
        )
    ],
}


def _document() -> dict:
    """The document the server serves, built at collection time (one test per operation) by an app that
    never touches its database; the requests go to the test's app. (schemathesis' lazy loader,
    `from_fixture`, relies on a pytest attribute that pytest 9.2 no longer has.)"""
    with create_app(conftest.test_config("sqlite://")).test_request_context():
        return build_document("/api/v1")


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(params=["coordinator", "idel"])
def bearer(request, db_session, cpts):
    territory = factories.territory(db_session, cpts)
    user = territory.coordinator if request.param == "coordinator" else territory.idel_user
    _row, raw = accounts.create_api_token(db_session, user, name="fuzz")
    db_session.commit()
    return {"Authorization": f"Bearer {raw}"}


@schema.parametrize()
# The examples of one operation share the test's transaction and callers, on purpose: what one example
# created, the next may find.
# A date keeps to the window of hub.schemas.base (a pattern on its text), which hypothesis reaches by filtering.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
def test_every_operation_answers_as_documented(case, app, bearer):
    # The checks that send requests of their own (without the token, with another method) use the schema's app.
    case.operation.schema.app = app
    case.call_and_validate(app=app, headers=bearer)


def test_a_refused_method_says_which_are_allowed(client):
    response = client.delete("/api/v1/patients")

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.mimetype == "application/problem+json"


def test_an_id_beyond_the_row_ids_is_unknown_whatever_the_method(api_as, coordinator):
    api = api_as(coordinator)

    for response in (api.get("/api/v1/organisations/14333431487"), api.patch("/api/v1/organisations/14333431487")):
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_the_document_declares_amounts_as_strings_and_withdrawal_as_200(client):
    document = client.get("/api/v1/openapi.json").get_json()

    assert document["components"]["schemas"]["TariffOut"]["properties"]["amount"]["type"] == "string"
    assert "200" in document["paths"]["/patients/{patient_id}/consents/{consent_id}/withdraw"]["post"]["responses"]
