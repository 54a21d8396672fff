"""The GP's referral to the coordinator's triage, in Chromium (issue 12, item 2): the GP sends an empty form and
sees each missing field named next to it, then sends the referral; the coordinator opens the triage queue, the
referral's page (also on a phone), accepts, fills the eligibility checklist pre-filled from the referral, picks
next Monday's cardiology slot and the IDEL proposed first, and lands back on a shorter queue.

Its own patient (Vergt, with an IDEL of Vergt in the care team) and its own referral; the slot is one of next
Monday's cardiology slots still free when the test runs, the last first (other journeys use this Monday's)."""

import datetime as dt
import re

from sqlalchemy import select

from hub.demo.planning import CARDIOLOGY
from hub.models import (
    Allocation,
    AllocationResource,
    Appointment,
    Organisation,
    Profession,
    Professional,
    Referral,
    SessionProgram,
    Slot,
    User,
)
from scheduling.slots import HOLDING_STATES
from tests import factories
from tests.browser.conftest import CLOCK
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe
from workflows import accompaniment

VERGT = "24571"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def own_patient(sessions, gp_login: str, busy_idel_login: str) -> tuple[int, str, int]:
    """A patient of the GP living in Vergt, with an IDEL of Vergt (not the one of today's first visit) in the
    care team: (patient id, the name the pages show, the IDEL's id)."""
    with sessions.begin() as session:
        gp = session.scalars(select(User).where(User.login == gp_login)).one()
        busy = session.scalars(select(User.professional_id).where(User.login == busy_idel_login)).one()
        idel = session.scalars(
            select(Professional)
            .where(
                Professional.cpts_id == gp.cpts_id,
                Professional.profession == Profession.NURSE,
                Professional.commune_insee == VERGT,
                Professional.accompanies_teleconsultation.is_(True),
                Professional.is_active.is_(True),
                Professional.id != busy,
            )
            .order_by(Professional.id)
            .limit(1)
        ).one()
        cpts = session.get_one(Organisation, gp.cpts_id)
        patient = factories.patient(
            session,
            cpts,
            birth_name="ROUQUETTE",
            first_birth_given_name="ODETTE",
            birth_date=dt.date(1944, 5, 9),
            commune_insee=VERGT,
            attending_gp_id=gp.professional_id,
        )
        factories.in_care_team(session, patient, idel)
        return patient.id, patient.display_name, idel.id


def free_slot_next_monday(sessions, idel_id: int) -> tuple[int, str]:
    """Next Monday's cardiology slot that nobody holds and the IDEL is free at, the latest first: (id, as the
    page's list shows it)."""
    monday = (CLOCK + dt.timedelta(days=7)).date()
    with sessions() as session:
        slots = session.scalars(
            select(Slot).join(SessionProgram).where(SessionProgram.name == CARDIOLOGY).order_by(Slot.starts_at.desc())
        ).all()
        held = set(session.scalars(select(Appointment.slot_id).where(Appointment.state.in_(HOLDING_STATES))))
        for slot in slots:
            local = slot.starts_at.astimezone(CLOCK.tzinfo)
            if local.date() != monday or slot.id in held:
                continue
            start, end = accompaniment.window(slot)
            busy = session.scalar(
                select(Allocation.id).where(
                    Allocation.resource_kind == AllocationResource.PROFESSIONAL,
                    Allocation.resource_id == idel_id,
                    Allocation.starts_at < end,
                    Allocation.ends_at > start,
                )
            )
            if busy is None:
                return slot.id, f"lundi {local.day} novembre {local.year}, {local.hour} h {local.minute:02d}"
    raise AssertionError("no free cardiology slot next Monday")


def queue_count(page) -> int:
    heading = page.get_by_role("heading", name=re.compile(r"^Envoyés \(\d+\)")).inner_text()
    return int(re.search(r"\((\d+)\)", heading).group(1))


def look(page, shoot, label: str) -> None:
    check_axe(page)
    shoot(page, label)


def test_the_gp_refers_and_the_coordinator_triages_into_next_mondays_session(page_at, people, sessions, shoot):
    patient_id, patient_name, idel_id = own_patient(sessions, people.gp, people.idel)
    slot_id, slot_label = free_slot_next_monday(sessions, idel_id)

    # The GP: an empty form names each missing field, next to it.
    gp = page_at(DESKTOP, people.gp)
    gp.goto("/referrals/new")
    look(gp, shoot, "nouvel adressage")
    gp.get_by_role("button", name="Envoyer à la coordination").click()
    gp.wait_for_load_state()
    assert gp.locator("#e-patient_id").inner_text().startswith("Choisissez un de vos patients")
    assert gp.locator("#e-reason").inner_text() == "Indiquez le motif de l'adressage."
    assert gp.locator("#e-target_program_id").inner_text().startswith("Choisissez à qui adresser le patient")
    assert gp.locator("#e-consent_collected_on").inner_text().startswith("Indiquez la date du recueil")
    assert "Patient inconnu" not in gp.locator("main").inner_text()
    look(gp, shoot, "champs manquants")
    gp.get_by_label("Un de vos patients").select_option(str(patient_id))
    gp.get_by_label("Programme de séances").select_option(label=CARDIOLOGY)
    gp.get_by_label("Motif").fill("Insuffisance cardiaque : dyspnée d'effort, avis cardiologique")
    gp.get_by_label("Traitement en cours").fill("Furosémide 40 mg")
    gp.get_by_label("Urgence").select_option(label="Sous 15 jours")
    gp.get_by_label("Illectronisme").check()
    gp.get_by_label("Date du recueil du consentement du patient (télésanté)").fill(CLOCK.date().isoformat())
    gp.get_by_label("Document 1", exact=True).set_input_files(
        {"name": "bilan.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    gp.get_by_label("Nature du document 1").select_option(label="Ordonnance de bilan biologique")
    gp.get_by_role("button", name="Envoyer à la coordination").click()
    gp.wait_for_url("**/referrals/mine")
    assert "Adressage envoyé à la coordination." in gp.locator("main").inner_text()
    look(gp, shoot, "adressage envoye")
    with sessions() as session:
        referral_id = session.scalars(select(Referral.id).where(Referral.patient_id == patient_id)).one()

    # The coordinator: the queue, then the referral's page (also on a phone).
    coordinator = page_at(DESKTOP, people.coordinator)
    coordinator.goto("/referrals/triage")
    waiting = queue_count(coordinator)
    look(coordinator, shoot, "adressages a trier")
    coordinator.get_by_role("link", name=patient_name).first.click()
    coordinator.wait_for_url(f"**/referrals/{referral_id}")
    main = coordinator.locator("main").inner_text()
    for seen in ("Insuffisance cardiaque", "Furosémide 40 mg", "Ordonnance de bilan biologique", "Illectronisme"):
        assert seen in main
    assert "Urgence : Sous 15 jours" in main and "Commune : Vergt" in main
    assert "Télésoin / téléconsultation — recueilli le 16 novembre 2026" in main and "12 h 00" not in main
    assert "Envoyé à la coordination" in main and coordinator.get_by_role("link", name="Lettre d'adressage (PDF)")
    look(coordinator, shoot, "page de l'adressage")
    coordinator.set_viewport_size({"width": PHONE, "height": 844})
    assert_no_horizontal_scroll(coordinator)
    look(coordinator, shoot, "page de l'adressage telephone")
    coordinator.set_viewport_size({"width": DESKTOP, "height": 768})

    # Accept: the checklist is on the same page, pre-filled from the referral.
    coordinator.get_by_role("button", name="Accepter").click()
    coordinator.wait_for_url(f"**/referrals/{referral_id}#programmer")
    assert coordinator.locator("#f-illectronism-true").is_checked()
    assert coordinator.locator("#f-can_use_tools-false").is_checked()
    assert "Retour au dossier" not in coordinator.locator("main").inner_text()
    look(coordinator, shoot, "eligibilite pre-remplie")
    for question in (
        "clinical_situation_compatible",
        "can_communicate_remotely",
        "physical_factors_ok",
        "psychological_factors_ok",
        "social_factors_ok",
        "several_conditions",
    ):
        coordinator.locator(f"#f-{question}-true").check()
    for question in ("needs_direct_contact", "needs_equipment_not_at_hand", "is_first_care"):
        coordinator.locator(f"#f-{question}-false").check()
    coordinator.get_by_role("button", name="Enregistrer l'éligibilité").click()
    coordinator.wait_for_url(f"**/referrals/{referral_id}#programmer")
    assert "Éligibilité enregistrée" in coordinator.locator("main").inner_text()

    # Next Monday's slot; the patient's own IDEL is proposed first, with the reason and the distance.
    coordinator.get_by_label("Créneau", exact=True).select_option(str(slot_id))
    coordinator.get_by_role("button", name="Voir les accompagnants libres").click()
    coordinator.wait_for_url(re.compile(rf".*/referrals/{referral_id}\?slot={slot_id}.*"))
    assert coordinator.get_by_label("Créneau", exact=True).input_value() == str(slot_id)
    assert coordinator.get_by_label("Lieu", exact=True).input_value() == "lieu_dedie"
    first = coordinator.locator(".candidate").first
    assert first.locator("input").get_attribute("value") == str(idel_id) and first.locator("input").is_checked()
    # Her rank's reasons (workflows.idel_ranking): the patient's own, then distance, visits this month, pending offers.
    assert "— Vergt" in first.inner_text()
    assert "IDEL du patient · 0,0\u00a0km · 0 visite ce mois · 0 proposition en attente" in first.inner_text()
    assert not re.search(r"\b24\d{3}\b", coordinator.locator("#programmer").locator("..").inner_text())
    assert slot_label in coordinator.locator("#f-accompanying_id legend").inner_text()
    look(coordinator, shoot, "creneau et idel")
    coordinator.get_by_role("button", name="Programmer").click()
    coordinator.wait_for_url("**/referrals/triage")
    assert f"Adressage de {patient_name} programmé le {slot_label}" in coordinator.locator("main").inner_text()
    assert queue_count(coordinator) == waiting - 1
    look(coordinator, shoot, "retour a la file")

    with sessions() as session:
        appointment = session.scalars(
            select(Appointment)
            .join(Referral, Referral.appointment_id == Appointment.id)
            .where(Referral.id == referral_id)
        ).one()
        assert (appointment.slot_id, appointment.accompanying_id, appointment.place_kind.value) == (
            slot_id,
            idel_id,
            "lieu_dedie",
        )
        assert any(
            a.resource_kind is AllocationResource.PROFESSIONAL and a.resource_id == idel_id
            for a in appointment.allocations
        )
