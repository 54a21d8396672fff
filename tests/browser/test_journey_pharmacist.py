"""The pharmacist of the Manzac-sur-Vern officine: the demo's Tuesday-morning teleconsultations in the officine
(PHARMACY_TELECONSULTATION), the pharmacist with the patient. On Monday his desk shows tomorrow's session; on
Tuesday morning, the day's.

Read only: the journey changes nothing that another browser test reads."""

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hub.demo.planning import OFFICINE, OFFICINE_PROGRAM
from hub.models import Appointment, AppointmentState, Organisation, User
from hub.services import directory
from tests.browser.conftest import CLOCK
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe


@dataclass(frozen=True)
class OfficineSession:
    login: str
    appointment_id: int
    patient: str
    starts_at: dt.datetime


@pytest.fixture
def officine_session(sessions) -> OfficineSession:
    """The officine's pharmacist and the first session he confirmed after the tests' Monday (Tuesday 09:30)."""
    with sessions() as session:
        officine = session.scalars(select(Organisation).where(Organisation.name == OFFICINE)).one()
        pharmacist = directory.officine_pharmacists(session, officine.id)[0]
        appointment = session.scalars(
            select(Appointment)
            .where(
                Appointment.accompanying_id == pharmacist.id,
                Appointment.state == AppointmentState.CONFIRMED,
                Appointment.starts_at > CLOCK,
            )
            .order_by(Appointment.starts_at)
            .limit(1)
        ).one()
        login = session.scalars(select(User.login).where(User.professional_id == pharmacist.id)).one()
        return OfficineSession(login, appointment.id, appointment.patient.display_name, appointment.starts_at)


def visit(page: Page, shoot, label: str) -> None:
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, label)


def test_the_pharmacist_sees_the_assisted_sessions_of_his_officine(page_at, officine_session, clock, shoot):
    assert officine_session.starts_at.astimezone(CLOCK.tzinfo).strftime("%a %H:%M") == "Tue 09:30"
    page = page_at(DESKTOP, officine_session.login)
    page.goto("/")
    expect(page.get_by_role("heading", name="Téléconsultations assistées en officine")).to_be_visible()
    tomorrow = page.locator("#desk-tomorrow")
    expect(tomorrow.get_by_role("heading")).to_have_text("Demain, mardi 17 novembre 2026")
    row = tomorrow.locator(f"#desk-visite-{officine_session.appointment_id}")
    expect(row).to_contain_text(officine_session.patient)
    expect(row).to_contain_text(OFFICINE_PROGRAM)
    expect(row).to_contain_text("9 h 20 – 9 h 50")  # he welcomes the patient 10 min before, stays 5 min after
    expect(page.locator("#desk-tlm")).to_contain_text(re.compile(r"\d+ téléconsultations? assistées?"))
    visit(page, shoot, "bureau du pharmacien lundi")

    clock.move_to(officine_session.starts_at - dt.timedelta(minutes=40))  # Tuesday, 08:50
    phone = page_at(PHONE, officine_session.login, log_in_again=True)
    phone.goto("/")
    today = phone.locator("#desk-today")
    expect(today.get_by_role("heading")).to_have_text("Aujourd'hui, mardi 17 novembre 2026")
    expect(today.locator(f"#desk-visite-{officine_session.appointment_id}")).to_contain_text(officine_session.patient)
    visit(phone, shoot, "bureau du pharmacien mardi")
