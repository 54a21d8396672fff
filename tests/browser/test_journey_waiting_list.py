"""Freeing a slot and offering it to a waiting patient, in Chromium (issue 16, item 1): the coordinator puts a
patient on the cardiology program's waiting list from the patient's page, cancels another patient's appointment
(freeing its slot), sees « Créneaux libérés à proposer (1) » on the desk with the waiting patient, offers the slot
in one click and lands on the appointment booked for them.

Its own two patients (consenting and eligible to assisted teleconsultation) and its own appointment, in a
cardiology slot two Mondays ahead that nobody holds (the other journeys use this Monday's and next Monday's)."""

import datetime as dt

from sqlalchemy import select

from hub.demo.planning import CARDIOLOGY
from hub.models import (
    Appointment,
    FreedSlotTask,
    Organisation,
    PlaceKind,
    SessionProgram,
    Slot,
    User,
    WaitingEntry,
    WaitingState,
)
from scheduling.slots import HOLDING_STATES
from tests import factories
from tests.browser.conftest import CLOCK
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe
from workflows import appointments


def look(page, shoot, label: str, *, phone: bool = False) -> None:
    check_axe(page)
    shoot(page, label)
    if phone:
        page.set_viewport_size({"width": PHONE, "height": 844})
        assert_no_horizontal_scroll(page)
        check_axe(page)
        shoot(page, f"{label} telephone")
        page.set_viewport_size({"width": DESKTOP, "height": 768})


def booked_and_waiting(sessions, coordinator_login: str) -> tuple[int, int, str, int]:
    """The appointment to cancel (another patient's, two Mondays ahead, at a slot nobody else holds) and the
    patient who will wait: (appointment id, slot id, waiting patient's id, the name the pages show)."""
    two_mondays = (CLOCK + dt.timedelta(days=14)).date()
    with sessions.begin() as session:
        coordinator = session.scalars(select(User).where(User.login == coordinator_login)).one()
        cpts = session.get_one(Organisation, coordinator.cpts_id)
        held = set(session.scalars(select(Appointment.slot_id).where(Appointment.state.in_(HOLDING_STATES))))
        slot = next(
            slot
            for slot in session.scalars(
                select(Slot).join(SessionProgram).where(SessionProgram.name == CARDIOLOGY).order_by(Slot.starts_at)
            )
            if slot.starts_at.astimezone(CLOCK.tzinfo).date() == two_mondays and slot.id not in held
        )
        other = factories.consenting_patient(
            session, cpts, recorded_by=coordinator, birth_name="LAFON", first_birth_given_name="ROGER"
        )
        waiter = factories.consenting_patient(
            session,
            cpts,
            recorded_by=coordinator,
            birth_name="MAZEAU",
            first_birth_given_name="JEANNE",
            birth_date=dt.date(1941, 3, 2),
        )
        appointment = appointments.book(
            session, coordinator, slot=slot, patient=other, place_kind=PlaceKind.DEDICATED_PLACE
        )
        session.flush()
        return appointment.id, slot.id, waiter.id, waiter.display_name


def task_id(sessions, slot_id: int) -> int:
    with sessions() as session:
        return session.scalars(select(FreedSlotTask.id).where(FreedSlotTask.slot_id == slot_id)).one()


def test_the_coordinator_offers_a_freed_slot_to_a_waiting_patient(page_at, people, sessions, shoot):
    cancelled_id, slot_id, patient_id, patient_name = booked_and_waiting(sessions, people.coordinator)
    coordinator = page_at(DESKTOP, people.coordinator)

    # The waiting list, from the patient's page.
    coordinator.goto(f"/patients/{patient_id}")
    coordinator.get_by_role("link", name="Mettre en liste d'attente").click()
    coordinator.wait_for_url(f"**/waiting-list/new?patient_id={patient_id}")
    look(coordinator, shoot, "mettre en liste d'attente", phone=True)
    coordinator.get_by_role("button", name="Mettre en liste d'attente").click()
    coordinator.wait_for_load_state()
    assert coordinator.locator("#e-program_id").inner_text() == "Ce champ est obligatoire."
    assert coordinator.locator("#e-urgency").inner_text() == "Ce champ est obligatoire."
    look(coordinator, shoot, "champs manquants")
    coordinator.get_by_label("Programme").select_option(label=CARDIOLOGY)
    coordinator.get_by_label("Urgence").select_option(label="Urgent")
    coordinator.get_by_label("Lundi").check()
    coordinator.get_by_label("Note pour la coordination").fill("Joignable le matin")
    coordinator.get_by_role("button", name="Mettre en liste d'attente").click()
    coordinator.wait_for_url("**/waiting-list?program_id=*")
    main = coordinator.locator("main").inner_text()
    assert f"{patient_name} est en liste d'attente" in main
    assert "Jours : lundi" in main and "Joignable le matin" in main
    look(coordinator, shoot, "liste d'attente", phone=True)

    # Another patient's appointment is cancelled: its slot is free again.
    coordinator.goto(f"/planning/appointments/{cancelled_id}")
    coordinator.get_by_label("Motif de l'annulation").fill("Patient hospitalisé")
    coordinator.get_by_role("button", name="Annuler le rendez-vous").click()
    coordinator.wait_for_load_state()
    assert "le créneau libéré est à leur proposer depuis l'accueil" in coordinator.locator("main").inner_text()

    # The desk: the freed slot and the waiting patient it fits; the list behind its count; the offer in one click.
    coordinator.goto("/")
    tile = coordinator.locator("#desk-freed-slots")
    assert "Créneaux libérés à proposer (1)" in tile.inner_text()
    assert f"{patient_name} : Urgent, en attente depuis 0 j, disponible le lundi" in tile.inner_text()
    look(coordinator, shoot, "accueil creneau libere", phone=True)
    tile.get_by_role("link", name="1 créneau libéré à proposer").click()
    coordinator.wait_for_url("**/freed-slots")
    assert "Rendez-vous annulé" in coordinator.locator(f"#creneau-libere-{task_id(sessions, slot_id)}").inner_text()
    look(coordinator, shoot, "creneaux liberes", phone=True)
    coordinator.go_back()
    coordinator.wait_for_url(lambda url: url.endswith("/"))
    tile.get_by_role("button", name=f"Proposer ce créneau à {patient_name}").click()
    coordinator.wait_for_url("**/planning/appointments/*")
    offered_url = coordinator.url
    main = coordinator.locator("main").inner_text()
    assert f"Créneau proposé à {patient_name} : rendez-vous pris." in main
    look(coordinator, shoot, "rendez-vous pris")
    coordinator.goto("/")
    assert "Créneaux libérés à proposer (0)" in coordinator.locator("#desk-freed-slots").inner_text()

    with sessions() as session:
        booked = session.scalars(
            select(Appointment).where(Appointment.slot_id == slot_id, Appointment.state.in_(HOLDING_STATES))
        ).one()
        entry = session.scalars(select(WaitingEntry).where(WaitingEntry.patient_id == patient_id)).one()
        assert booked.patient_id == patient_id
        assert (entry.state, entry.appointment_id) == (WaitingState.BOOKED, booked.id)
    assert offered_url.endswith(f"/planning/appointments/{booked.id}")
