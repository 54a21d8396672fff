"""I2: one input policy for the API and the forms. Integers beyond the database's range, a NUL byte or another
control character, dates outside 1900-2100, a huge page number, JSON nested without end: each is a 4xx
problem+json (or the form shown again with a French message), and nothing is saved.

The PostgreSQL-only failures (integers beyond 2³¹, NUL in text) are asserted the same way on both databases."""

import logging

import pytest
from sqlalchemy import event, func, select, text

from hub.models import Appointment, Patient, Referral, SessionProgram
from tests import factories
from tests.api.test_patients_api import NEW_PATIENT, assert_problem

pytestmark = pytest.mark.usefixtures("clock")

ADDRESS = "12 rue des Tilleuls, 24000 Périgueux"
REASON = "Dyspnée d'effort, suspicion d'insuffisance cardiaque"

# What reaches a 500 today: on PostgreSQL beyond 2³¹ (integer columns), on SQLite beyond 2⁶³.
TOO_LARGE = [2**31, 2**63, -(2**31) - 1]
BAD_TEXT = ["DU\x00PONT", "DU\x1bPONT"]
BAD_DAYS = ["0001-01-01", "9999-12-31", "1899-12-31", "2101-01-01"]


@pytest.fixture
def world(db_session, territory, slot, gp):
    """Who posts what: a GP's patient and referral, the coordinator's program and booking."""
    patient = factories.patient(db_session, territory.cpts, attending_gp_id=gp.professional_id)
    db_session.commit()
    return {
        "patients": (gp, "/api/v1/patients", NEW_PATIENT | {"attending_gp_id": gp.professional_id}, Patient),
        "referrals": (
            gp,
            "/api/v1/referrals",
            {"patient_id": patient.id, "target_program_id": territory.program.id, "reason": REASON},
            Referral,
        ),
        "programs": (
            territory.coordinator,
            "/api/v1/programs",
            {
                "name": "Cardiologie",
                "kind": "assisted_teleconsultation",
                "rrule": "FREQ=WEEKLY;BYDAY=MO",
                "first_day": "2026-11-16",
                "time_of_day": "14:00",
                "slot_count": 3,
                "slot_minutes": 15,
                "performer_id": territory.cardiologist.id,
            },
            SessionProgram,
        ),
        "appointments": (
            territory.coordinator,
            "/api/v1/appointments",
            {"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie"},
            Appointment,
        ),
    }


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


def bad_values(fields: dict) -> list[tuple[str, str, object]]:
    return [(resource, field, value) for resource, (field, values) in fields for value in values]


BAD_BODIES = bad_values(
    [
        ("patients", ("attending_gp_id", TOO_LARGE)),
        ("patients", ("birth_name", BAD_TEXT)),
        ("patients", ("address", ["12 rue\x00des Tilleuls", "12 rue\x07des Tilleuls"])),
        ("patients", ("birth_date", BAD_DAYS)),
        ("referrals", ("patient_id", TOO_LARGE)),
        ("referrals", ("target_program_id", TOO_LARGE)),
        ("referrals", ("reason", ["Dyspnée\x00", "Dyspnée\x0c", "Dyspnée\ufffe"])),
        ("referrals", ("needs", [["aidant\x00"]])),
        ("programs", ("performer_id", TOO_LARGE)),
        ("programs", ("room_id", [2**31])),
        ("programs", ("name", [*BAD_TEXT, "Cardio\uffff", "Cardio\ud800"])),
        ("programs", ("first_day", BAD_DAYS)),
        ("programs", ("valid_until", ["9999-12-31"])),
        ("programs", ("time_of_day", ["14:00\x00"])),
        ("appointments", ("slot_id", TOO_LARGE)),
        ("appointments", ("patient_id", TOO_LARGE)),
        ("appointments", ("accompanying_id", [2**31])),
        ("appointments", ("place_kind", ["lieu_dedie\x00"])),
    ]
)


@pytest.mark.parametrize(("resource", "field", "value"), BAD_BODIES)
def test_a_bad_value_in_a_json_body_is_a_4xx_problem_and_nothing_is_saved(
    api_as, db_session, world, resource, field, value
):
    user, url, body, model = world[resource]
    before = count(db_session, model)
    response = api_as(user).post(url, json=body | {field: value})
    problem = assert_problem(response, response.status_code)
    assert response.status_code in (400, 422), problem
    if response.status_code == 422:
        assert field in problem["errors"], problem
    assert count(db_session, model) == before


def test_the_bodies_are_accepted_as_they_are(api_as, world):
    """The cases above fail because of the one bad value."""
    for user, url, body, _model in world.values():
        response = api_as(user).post(url, json=body)
        assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/patients?page=99999999999999999999",
        "/api/v1/patients?page=9223372036854775807",
        "/api/v1/patients?page=2147483648",
        "/api/v1/patients?q=DU%00PONT",
        "/api/v1/patients?birth_date=0001-01-01",
        "/api/v1/referrals?page=4611686018427387904",
        "/api/v1/outbox?page=99999999999999999999",
        "/api/v1/programs?page=99999999999999999999",
        "/api/v1/professionals?q=a%00b",
        "/api/v1/professionals?page=99999999999999999999",
        "/api/v1/pathways?patient_id=99999999999999999999",
        "/api/v1/pathways?patient_id=2147483648",
        "/api/v1/fees?from=0001-01-01",
        "/api/v1/fees?professional_id=99999999999999999999",
        "/api/v1/programs/{program}/slots?from=0001-01-01",
        "/api/v1/programs/{program}/slots?to=9999-12-31",
        "/api/v1/programs/{program}/slots?page=99999999999999999999",
    ],
)
def test_a_bad_query_string_is_a_4xx_problem(api_as, territory, query):
    response = api_as(territory.coordinator).get(query.format(program=territory.program.id))
    assert_problem(response, response.status_code)
    assert response.status_code in (400, 422)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        nested(10_000),
        '{"birth_name": ' + nested(10_000) + "}",
        '{"birth_name": ' + nested(200) + "}",
        '{"birth_name": "DUPONT", "attending_gp_id": Infinity}',
        '{"birth_name": "DUPONT", "attending_gp_id": NaN}',
        '{"attending_gp_id": 1' + "0" * 5000 + "}",
    ],
    ids=["array-10000", "field-10000", "field-200", "infinity", "nan", "5000-digits"],
)
def test_json_nested_too_deep_or_not_json_is_a_400_problem(api_as, gp, db_session, body):
    before = count(db_session, Patient)
    client = api_as(gp)
    response = client.client.post(
        "/api/v1/patients", data=body, headers=client.headers | {"Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert count(db_session, Patient) == before


def test_json_of_a_reasonable_depth_still_reaches_the_schema(api_as, gp):
    response = api_as(gp).post("/api/v1/patients", json=NEW_PATIENT | {"birth_name": [[["x"]]]})
    assert assert_problem(response, 422)["errors"]["birth_name"] == "Texte attendu."


# --- logs -------------------------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog):
    """Every logger at DEBUG, SQLAlchemy's too (it sets its own at WARNING), from before the test's database
    connection is made (SQLAlchemy decides when a connection starts whether it logs its statements)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    return caplog


@pytest.fixture
def failing_inserts(db_session):
    """The next INSERT into `table` fails in the database, with its real parameters (an unexpected error)."""

    def arm(table: str):
        def rewrite(_conn, _cursor, statement, parameters, _context, _executemany):
            if statement.startswith(f"INSERT INTO {table} "):
                statement = statement.replace(f"INSERT INTO {table} ", "INSERT INTO no_such_table ", 1)
            return statement, parameters

        event.listen(db_session.connection(), "before_cursor_execute", rewrite, retval=True)

    return arm


def test_an_unexpected_error_logs_no_health_data(debug_logs, api_as, db_session, world, failing_inserts):
    gp, _url, referral, _model = world["referrals"]
    failing_inserts("referrals")
    response = api_as(gp).post("/api/v1/referrals", json=referral | {"reason": REASON})
    assert_problem(response, 500)
    failing_inserts("patients")
    response = api_as(gp).post("/api/v1/patients", json=NEW_PATIENT | {"address": ADDRESS, "birth_name": "Secretname"})
    assert_problem(response, 500)
    logged = debug_logs.text + "".join(record.getMessage() for record in debug_logs.records)
    assert "unexpected error on POST /api/v1/referrals" in logged, "the error itself is logged"
    assert "no_such_table" in logged, "with what failed"
    for secret in (REASON, ADDRESS, "SECRETNAME", "Dyspnée", "Tilleuls"):
        assert secret not in logged


def test_the_engine_never_logs_sql_parameters(debug_logs, engine):
    with engine.connect() as connection:
        connection.execute(text("SELECT :address"), {"address": ADDRESS})
    assert "SELECT" in debug_logs.text, "statements are logged at this level"
    assert ADDRESS not in debug_logs.text
