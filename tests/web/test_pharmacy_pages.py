"""Issue 11, item 6, through the pages: the coordinator plans teleconsultations in an officine and books them with
its pharmacist; the pharmacist's home, « Mes visites » and fee pages show their sessions (next and done, with
the doctor as prescriber) and their TLM against the block of 5 and the 750 € cap."""

import datetime as dt
import html
import re

import pytest
from sqlalchemy import select

from hub.models import Appointment, OrganisationKind, PlaceKind, ProgramKind, SessionProgram
from tests import factories
from tests.factories import MONDAY_14H, PARIS, PROGRAM_FORM
from tests.web.test_planning_pages import field_error, text
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")
EUROS = "\u00a0€"


@pytest.fixture
def officine(db_session, territory):
    organisation, pharmacist = factories.officine(
        db_session, territory.cpts, first_name="Annie", last_name="Reynaud", email="pharma@example.org"
    )
    program = factories.program(db_session, territory.cpts, performer=territory.cardiologist, at_officine=organisation)
    db_session.commit()
    return organisation, pharmacist, program


def squash(page: str) -> str:
    """The page's text, tags and runs of blanks reduced to one space (no-break spaces kept)."""
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", page))


# --- the coordinator ---------------------------------------------------------------------------------------


def test_the_coordinator_plans_teleconsultations_in_an_officine(auth, db_session, territory, officine):
    t, (organisation, _pharmacist, _program) = territory, officine
    msp = factories.organisation(db_session, t.cpts, kind=OrganisationKind.MSP, name="MSP Vergt")
    db_session.commit()
    auth.login(t.coordinator)
    form = text(auth.client.get("/planning/programs/new"))
    assert '<option value="pharmacy_teleconsultation">Téléconsultation assistée en officine</option>' in form
    data = PROGRAM_FORM | {
        "name": "Téléconsultation en officine",
        "kind": "pharmacy_teleconsultation",
        "performer_id": t.cardiologist.id,
        "slot_interval_minutes": "60",
    }
    refused = auth.post("/planning/programs/new", data | {"organisation_id": msp.id})
    assert refused.status_code == 422
    assert "Choisissez l'officine" in field_error(text(refused), "organisation_id")
    created = auth.post("/planning/programs/new", data | {"organisation_id": organisation.id})
    assert created.status_code == 302, field_error(text(created), "organisation_id")
    program = db_session.scalars(select(SessionProgram).where(SessionProgram.name == data["name"])).one()
    assert (program.kind, program.organisation_id) == (ProgramKind.PHARMACY_TELECONSULTATION, organisation.id)
    page = text(auth.client.get(created.headers["Location"]))
    assert "Téléconsultation assistée en officine" in page
    assert f"{organisation.name} : ses pharmacien·nes accompagnent les patients" in page


def test_booking_an_officine_slot_proposes_its_pharmacist_only(auth, db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    slot = factories.slot(db_session, program, MONDAY_14H.astimezone(dt.UTC))
    db_session.commit()
    auth.login(t.coordinator)
    page = text(auth.client.get(f"/planning/slots/{slot.id}/book?q={t.patient.birth_name}"))
    accompanying = page.split('name="accompanying_id"')[1].split("</select>")[0]
    assert pharmacist.professional.full_name in accompanying and t.idel.full_name not in accompanying
    assert "Pharmacien·ne de l'officine qui accompagne" in page
    assert '<option value="officine" selected>Officine</option>' in page
    response = auth.post(f"/planning/slots/{slot.id}/book", {"patient_id": t.patient.id, "place_kind": "officine"})
    assert response.status_code == 302
    appointment = db_session.scalars(select(Appointment)).one()
    assert appointment.accompanying_id == pharmacist.professional_id
    assert f"Rendez-vous proposé à {pharmacist.professional.full_name}." in text(
        auth.client.get(response.headers["Location"])
    )
    detail = text(auth.client.get(f"/planning/appointments/{appointment.id}"))
    assert "Pharmacien·ne de l'officine" in detail and "Proposer à un·e autre pharmacien·ne de l'officine" in detail


def test_an_ordinary_slot_offers_no_pharmacist(auth, db_session, territory, officine, slot):
    _organisation, pharmacist, _program = officine
    auth.login(territory.coordinator)
    page = text(auth.client.get(f"/planning/slots/{slot.id}/book"))
    accompanying = page.split('name="accompanying_id"')[1].split("</select>")[0]
    assert territory.idel.full_name in accompanying and pharmacist.professional.full_name not in accompanying


# --- the pharmacist ----------------------------------------------------------------------------------------


def assisted(db_session, t, program, pharmacist, count: int, *, first=dt.datetime(2026, 1, 5, 9, 30, tzinfo=PARIS)):
    for n in range(count):
        factories.assistance_done(db_session, program, pharmacist, t.patient, first + dt.timedelta(days=n))


def test_the_pharmacist_sees_the_next_session_and_the_years_tlm(auth, db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    assisted(db_session, t, program, pharmacist, 5)
    slot = factories.slot(db_session, program, MONDAY_14H.astimezone(dt.UTC))
    appointments.book(db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.PHARMACY)
    db_session.commit()
    auth.login(pharmacist)
    home = squash(text(auth.client.get("/")))
    assert "Téléconsultations assistées en officine" in home
    assert f"lundi 23 novembre 2026, 14 h 00 — {t.patient.display_name}" in home  # to confirm
    assert "Assistances de 2026 (TLM) 5 téléconsultations assistées" in home
    assert f"Rémunération acquise : 25,00{EUROS}" in home
    assert f"sur un plafond de 750,00{EUROS} ; encore 5 assistances avant le prochain forfait" in home

    visits = squash(text(auth.client.get("/visits")))
    officine_part = visits.split("Téléconsultations assistées en officine")[1]
    assert "1 séance à venir ; 5 réalisées en 2026" in officine_part
    assert f"lundi 23 novembre 2026, 14 h 00 — {t.patient.display_name} ; téléconsultation de" in officine_part
    assert f"prescripteur : {t.cardiologist.full_name} (RPPS {t.cardiologist.rpps})" in officine_part
    assert f"Rémunération TLM 2026 : 25,00{EUROS} sur 750,00{EUROS} au plus" in officine_part

    fees = text(auth.client.get("/fees/me?year=2026"))
    tlm = squash(fees.split('id="tlm"')[1].split("</section>")[0])
    assert f"5 assistances en 2026 : 25,00{EUROS} de TLM sur 750,00{EUROS} au plus dans l'année" in tlm
    assert f"Encore 5 assistances avant le prochain forfait de 25,00{EUROS}" in tlm
    statement = fees.split('id="statement-title"')[1]
    assert f"{t.cardiologist.full_name}<br>{t.cardiologist.rpps}" in statement


def test_past_the_cap_the_pharmacist_reads_that_it_is_reached(auth, db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    assisted(db_session, t, program, pharmacist, 155)
    db_session.commit()
    auth.login(pharmacist)
    tlm = squash(html.unescape(auth.client.get("/fees/me?year=2026").get_data(as_text=True)).split('id="tlm"')[1])
    assert f"155 assistances en 2026 : 750,00{EUROS} de TLM sur 750,00{EUROS}" in tlm
    assert "Plafond annuel atteint" in tlm and "Encore" not in tlm.split("</section>")[0]
    assert "750,00\N{NO-BREAK SPACE}€ : plafond atteint." in squash(text(auth.client.get("/")))


def test_an_idel_sees_no_officine_section(auth, territory, officine):
    auth.login(territory.idel_user)
    assert "Téléconsultations assistées en officine" not in text(auth.client.get("/"))
    assert "Téléconsultations assistées en officine" not in text(auth.client.get("/visits"))
    assert 'id="tlm"' not in text(auth.client.get("/fees/me"))
