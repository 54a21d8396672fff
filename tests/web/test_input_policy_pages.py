"""I2 through the pages: a value out of range, a control character or a date outside 1900-2100 in a form is
shown again next to its field in French; a NUL byte anywhere is a French 400 page; a huge page number or row
count is no error. Nothing is saved."""

import html
import io
import re

import pytest
from sqlalchemy import func, select

from hub.models import Patient, Role, SessionProgram
from tests import factories
from tests.factories import PROGRAM_FORM
from tests.web.test_pathways_pages import template_id

pytestmark = pytest.mark.usefixtures("clock")


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


PATIENT_FORM = {
    "birth_name": "Durand",
    "first_birth_given_name": "Léa",
    "birth_date": "1980-05-17",
    "sex": "F",
    "birth_place_insee": "24322",
}
FORM_CASES = [
    ("/patients/new", "gp", PATIENT_FORM, Patient, field, value, message)
    for field, value, message in [
        ("attending_gp_id", str(2**31), "Nombre hors des limites"),
        ("attending_gp_id", str(2**63), "Nombre hors des limites"),
        ("birth_name", "DU\x1bPONT", "Caractère de contrôle"),
        ("address", "12 rue\x07des Tilleuls", "Caractère de contrôle"),
        ("birth_date", "0001-01-01", "entre le 01/01/1900 et le 31/12/2100"),
        ("birth_date", "9999-12-31", "entre le 01/01/1900 et le 31/12/2100"),
    ]
] + [
    ("/planning/programs/new", "coordinator", PROGRAM_FORM, SessionProgram, field, value, message)
    for field, value, message in [
        ("performer_id", str(2**63), "Nombre hors des limites"),
        ("name", "Cardio\x01logie", "Caractère de contrôle"),
        ("name", "Cardio\uffff", "Caractère de contrôle"),
        ("first_day", "0001-01-01", "entre le 01/01/1900 et le 31/12/2100"),
        ("valid_until", "9999-12-31", "entre le 01/01/1900 et le 31/12/2100"),
    ]
]


@pytest.mark.parametrize(("url", "who", "form", "model", "field", "value", "message"), FORM_CASES)
def test_a_bad_value_in_a_form_is_shown_next_to_the_field_and_nothing_is_saved(
    auth, db_session, territory, gp, url, who, form, model, field, value, message
):
    user = gp if who == "gp" else territory.coordinator
    auth.login(user)
    form = form | ({"performer_id": str(territory.cardiologist.id)} if who == "coordinator" else {})
    before = count(db_session, model)
    response = auth.post(url, form | {field: value})
    body = response.get_data(as_text=True)
    assert response.status_code == 422, body
    assert message in field_message(body, field)
    assert count(db_session, model) == before


def field_message(body: str, name: str) -> str:
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return html.unescape(found.group(1)) if found else ""


@pytest.mark.parametrize(
    ("url", "field"),
    [("/patients/new", "birth_name"), ("/patients/new", "address"), ("/login", "login")],
)
def test_a_nul_byte_in_a_form_is_refused_in_french_and_nothing_is_saved(auth, db_session, gp, url, field):
    if url != "/login":
        auth.login(gp)
    before = count(db_session, Patient)
    response = auth.post(url, PATIENT_FORM | {field: "DU\x00PONT", "password": "x"})
    assert response.status_code == 400
    assert "caractère nul" in response.get_data(as_text=True)
    assert count(db_session, Patient) == before


def test_a_nul_byte_in_an_uploaded_file_name_is_refused(auth, db_session, gp):
    auth.login(gp)
    before = count(db_session, Patient)
    response = auth.post(
        "/patients/new",
        PATIENT_FORM | {"file": (io.BytesIO(b"%PDF-1.4"), "a\x00.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert count(db_session, Patient) == before


@pytest.mark.parametrize(
    "url",
    [
        "/patients?page=99999999999999999999",
        "/professionals?page=99999999999999999999",
        "/envois?page=99999999999999999999",
        "/admin/organisations?page=99999999999999999999",
    ],
)
def test_a_huge_page_number_in_a_list_page_is_no_error(auth, db_session, cpts, url):
    user = factories.coordinator(db_session, cpts)
    if url.startswith("/admin"):
        user = factories.user(db_session, cpts, Role.ADMIN)
    db_session.commit()
    auth.login(user)
    assert auth.client.get(url).status_code == 200


@pytest.mark.parametrize("row_count", ["abc", str(10**12)])
def test_the_row_count_of_the_pathway_steps_form_is_bounded(auth, db_session, cpts, row_count):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    shipped = template_id(db_session, "post_avc")
    response = auth.post(f"/admin/parcours/{shipped}/etapes", {"row_count": row_count, "steps-0-name": "Bilan"})
    assert response.status_code == 422
