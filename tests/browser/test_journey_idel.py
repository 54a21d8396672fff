"""The IDEL's round on a phone (390 px): from her desk to the visit's page, the consent recorded there, the visit
confirmed, the HAS checklist saved before the session; on the day, at the session's time, the patient checked in and
the session marked done; the visit then in her history and on the day sheet. axe-core and no horizontal scroll on
every page.

The journey books its own visit — a home visit on Wednesday morning, with a cardiologist, a patient, a GP's referral
and a kit of its own, accompanied by a demo IDEL other than the one of Monday's session — so that it neither depends
on nor changes what the other journeys look at."""

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hub.models import (
    Appointment,
    AppointmentState,
    ConsentKind,
    Organisation,
    PlaceKind,
    Profession,
    Professional,
    ReferralState,
    ResourceKind,
    User,
)
from hub.services.identity import has_valid_consent
from tests import factories
from tests.browser.support import PHONE, assert_no_horizontal_scroll, check_axe
from workflows import appointments

PARIS = factories.PARIS
WEDNESDAY_10H = dt.datetime(2026, 11, 18, 10, 0, tzinfo=PARIS)
ADDRESS = "4 chemin des Vignes, 24380 Vergt"


@dataclass(frozen=True)
class Round:
    login: str
    appointment_id: int
    patient_name: str


@pytest.fixture
def wednesday_visit(sessions, people) -> Round:
    """A home visit on Wednesday at 10:00 proposed to an IDEL of the demo (not Monday's), for a patient with no
    telehealth consent yet, booked for a referral, a connected ECG case to bring."""
    with sessions.begin() as session:
        monday_idel = session.scalars(select(User.professional_id).where(User.login == people.idel)).one()
        idel = session.scalars(
            select(Professional)
            .join(User, User.professional_id == Professional.id)
            .where(
                Professional.profession == Profession.NURSE,
                Professional.accompanies_teleconsultation.is_(True),
                Professional.is_active.is_(True),
                Professional.commune_insee.is_not(None),
                Professional.id != monday_idel,
            )
            .order_by(Professional.id.desc())
        ).first()
        assert idel is not None, "the demo has more than one IDEL"
        login = session.scalars(select(User.login).where(User.professional_id == idel.id)).one()
        coordinator = session.scalars(select(User).where(User.login == people.coordinator)).one()
        cpts = session.get_one(Organisation, idel.cpts_id)
        patient = factories.patient(
            session, cpts, commune_insee=idel.commune_insee, address=ADDRESS, phone="0553001122"
        )
        factories.in_care_team(session, patient, idel)
        factories.eligible_for_remote_care(session, patient, assessed_by=coordinator)
        cardiologist = factories.professional(session, cpts, Profession.SPECIALIST, last_name="Berthier")
        kit = factories.resource(
            session, cpts, ResourceKind.KIT, name="Mallette ECG de la tournée", description="ECG 12 dérivations"
        )
        program = factories.program(
            session, cpts, performer=cardiologist, name="Téléconsultation cardiologie du mercredi", kit_id=kit.id
        )
        slot = factories.slot(session, program, WEDNESDAY_10H.astimezone(dt.UTC))
        visit = appointments.book(
            session, coordinator, slot=slot, patient=patient, place_kind=PlaceKind.HOME, accompanying=idel
        )
        gp = factories.clinician(session, cpts, Profession.GENERAL_PRACTITIONER)
        factories.referral(
            session,
            patient,
            author=gp,
            state=ReferralState.SCHEDULED,
            appointment_id=visit.id,
            reason="Palpitations, contrôle ECG",
        )
        return Round(login=login, appointment_id=visit.id, patient_name=patient.display_name)


def checked(page: Page, shoot, label: str) -> None:
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, label)


def test_the_idel_confirms_prepares_and_ends_her_visit_on_a_phone(page_at, sessions, wednesday_visit, clock, shoot):
    visit_id = wednesday_visit.appointment_id
    page = page_at(PHONE, wednesday_visit.login)
    checked(page, shoot, "mon bureau")
    page.locator('a.desk-count[href="/visits#a-confirmer"]').click()
    page.wait_for_url("**/visits#a-confirmer")
    card = page.locator(f"#visite-{visit_id}")
    expect(card).to_contain_text("Consentement à la télésanté à recueillir")
    checked(page, shoot, "mes visites")

    card.get_by_role("link", name=re.compile("Ouvrir la visite")).click()
    page.wait_for_url(f"**/visits/{visit_id}")
    main = page.locator("main")
    expect(main).to_contain_text(ADDRESS)
    expect(main).to_contain_text("Votre présence : de 9 h 40 à 10 h 40")
    expect(page.get_by_role("link", name="05 53 00 11 22")).to_have_attribute("href", "tel:+33553001122")
    expect(page.get_by_role("link", name=re.compile("Voir sur la carte"))).to_have_attribute(
        "href", re.compile(r"^https://www\.openstreetmap\.org/search\?query=4\+chemin\+des\+Vignes")
    )
    expect(main).to_contain_text("Palpitations, contrôle ECG")
    expect(main).to_contain_text("Mallette ECG de la tournée")
    checked(page, shoot, "la visite")

    page.get_by_label("Mode de recueil").select_option("oral")
    page.get_by_role("button", name="Recueillir le consentement").click()
    expect(page.get_by_role("status")).to_contain_text("Consentement à la télésanté recueilli")
    checked(page, shoot, "consentement recueilli")
    page.get_by_role("button", name="Confirmer la visite").click()
    expect(page.get_by_role("status")).to_contain_text("Visite confirmée. Merci !")
    checked(page, shoot, "visite confirmée")

    for item in ("Caméra testée", "Son testé", "Éclairage suffisant", "Confidentialité assurée"):
        page.get_by_label(item).check()
    page.get_by_role("button", name="Enregistrer la liste de vérification").click()
    expect(page.get_by_role("status")).to_contain_text("Liste de vérification avant la séance enregistrée.")
    expect(main).to_contain_text("Enregistrée le lundi 16 novembre 2026, 9 h 00")
    checked(page, shoot, "liste de vérification enregistrée")

    clock.move_to(WEDNESDAY_10H)
    page = page_at(PHONE, wednesday_visit.login, log_in_again=True)
    page.goto(f"/visits/{visit_id}")
    page.get_by_label("Vérification de l'identité").select_option("document")
    expect(page.get_by_label("Lieu exact où se trouve le patient")).to_have_value(ADDRESS)
    page.get_by_role("button", name="Patient accueilli").click()
    expect(page.get_by_role("status")).to_contain_text("Patient accueilli")
    checked(page, shoot, "patient accueilli")
    page.get_by_role("button", name="Séance terminée").click()
    expect(page.get_by_role("status")).to_contain_text("Séance terminée.")
    checked(page, shoot, "séance terminée")

    page.goto("/visits/done")
    expect(page.locator(f"#visite-{visit_id}")).to_contain_text(wednesday_visit.patient_name)
    checked(page, shoot, "visites réalisées")
    page.goto("/visits/day-sheet?day=2026-11-18")
    expect(page.locator(f"#tournee-{visit_id}")).to_contain_text(ADDRESS)
    checked(page, shoot, "feuille de tournée")
    page.goto("/agenda?day=2026-11-18")
    checked(page, shoot, "mon agenda")
    page.locator(f'main a[href="/visits/{visit_id}"]').click()
    page.wait_for_url(f"**/visits/{visit_id}")
    checked(page, shoot, "la visite depuis l'agenda")

    with sessions() as session:
        visit = session.get_one(Appointment, visit_id)
        assert visit.state is AppointmentState.DONE and visit.checklist_saved_at < visit.starts_at
        assert has_valid_consent(visit.patient, ConsentKind.TELEHEALTH)
