"""The waiting list in the pages: « Mettre en liste d'attente » from the patient's page and from an accepted
referral, the list with its counts and the withdrawal, the desk's « Créneaux libérés à proposer (N) » and its
one-click offer; what is refused is said in French next to the field or at the top, and changes nothing."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import (
    Appointment,
    FreedSlotReason,
    FreedSlotTask,
    PlaceKind,
    ReferralState,
    WaitingEntry,
    WaitingState,
    WaitingUrgency,
)
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.queries import count_queries
from tests.web.test_desk_pages import text
from workflows import appointments, waiting

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def coordination(auth, territory):
    auth.login(territory.coordinator)
    return territory


def waiter(db_session, t):
    return factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)


def free_next_monday(db_session, t):
    """Next Monday 14:00 booked for the territory's patient, then cancelled: the slot is free again."""
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    db_session.commit()
    return slot


def test_from_the_patients_page_to_the_list(auth, coordination, db_session):
    t = coordination
    patient = waiter(db_session, t)
    db_session.commit()
    page = auth.client.get(f"/patients/{patient.id}")
    assert f'href="/waiting-list/new?patient_id={patient.id}"' in page.get_data(as_text=True)
    form = auth.client.get(f"/waiting-list/new?patient_id={patient.id}")
    assert form.status_code == 200 and "Jours où le patient peut venir" in text(form)
    response = auth.post(
        "/waiting-list/new",
        data={
            "patient_id": str(patient.id),
            "program_id": str(t.program.id),
            "urgency": "urgent",
            "weekdays": ["0", "3"],
            "needs": "audition",
            "note": "Appeler le matin",
        },
    )
    assert response.status_code == 302, text(response)
    entry = db_session.scalar(select(WaitingEntry).where(WaitingEntry.patient_id == patient.id))
    assert (waiting.weekdays_of(entry), waiting.needs_of(entry), entry.urgency) == (
        [0, 3],
        ["audition"],
        WaitingUrgency.URGENT,
    )
    listed = text(auth.client.get(response.headers["Location"]))
    assert f"{patient.display_name} Urgent" in listed
    assert "1 en attente, dont 1 urgent" in listed
    assert "Jours : lundi, jeudi" in listed and "Besoins : troubles de l'audition" in listed


def test_a_refused_entry_is_said_next_to_the_field_and_saves_nothing(auth, coordination, db_session):
    t = coordination
    response = auth.post(
        "/waiting-list/new",
        data={"patient_id": str(t.patient.id), "program_id": str(t.program.id), "place_kind": "officine"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="e-urgency"' in page
    assert db_session.scalar(select(func.count(WaitingEntry.id))) == 0
    waiting.add(db_session, t.coordinator, patient=t.patient, program=t.program, urgency=WaitingUrgency.URGENT)
    db_session.commit()
    again = auth.post(
        "/waiting-list/new",
        data={"patient_id": str(t.patient.id), "program_id": str(t.program.id), "urgency": "urgent"},
    )
    assert again.status_code == 409
    assert "déjà en liste d'attente" in text(again)


def test_an_accepted_referral_goes_on_the_list_from_its_page(auth, coordination, db_session, gp):
    t = coordination
    referral = factories.referral(
        db_session, t.patient, author=gp, state=ReferralState.ACCEPTED, target_program_id=t.program.id
    )
    db_session.commit()
    assert f"/waiting-list/new?referral_id={referral.id}" in auth.client.get(f"/referrals/{referral.id}").get_data(
        as_text=True
    )
    form = auth.client.get(f"/waiting-list/new?referral_id={referral.id}")
    assert 'value="des_que_possible" selected' in form.get_data(as_text=True)
    response = auth.post("/waiting-list/new", data={"referral_id": str(referral.id), "urgency": "sous_15_jours"})
    assert response.status_code == 302, text(response)
    entry = db_session.scalar(select(WaitingEntry).where(WaitingEntry.referral_id == referral.id))
    assert (entry.program_id, entry.urgency) == (t.program.id, WaitingUrgency.WITHIN_15_DAYS)


def test_withdrawing_asks_for_a_reason(auth, coordination, db_session):
    t = coordination
    entry = waiting.add(db_session, t.coordinator, patient=t.patient, program=t.program, urgency=WaitingUrgency.URGENT)
    db_session.commit()
    refused = auth.post(f"/waiting-list/{entry.id}/withdraw", data={"reason": ""})
    assert refused.status_code == 422 and f'id="e-reason-{entry.id}"' in refused.get_data(as_text=True)
    done = auth.post(f"/waiting-list/{entry.id}/withdraw", data={"reason": "Soigné ailleurs"})
    assert done.status_code == 302
    db_session.refresh(entry)
    assert (entry.state, entry.withdraw_reason) == (WaitingState.WITHDRAWN, "Soigné ailleurs")


def test_the_desk_shows_the_freed_slot_and_offers_it_in_one_click(auth, coordination, db_session):
    t = coordination
    patient = waiter(db_session, t)
    entry = waiting.add(db_session, t.coordinator, patient=patient, program=t.program, urgency=WaitingUrgency.URGENT)
    slot = free_next_monday(db_session, t)
    desk = auth.client.get("/")
    shown = text(desk)
    assert "Créneaux libérés à proposer (1)" in shown
    assert f"Proposer ce créneau à {patient.display_name}" in shown
    assert "Urgent, en attente depuis 0 j, disponible tous les jours" in shown
    task = db_session.scalar(select(FreedSlotTask).where(FreedSlotTask.slot_id == slot.id))
    response = auth.post(f"/freed-slots/{task.id}/offer", data={"entry_id": str(entry.id)})
    assert response.status_code == 302, text(response)
    appointment = db_session.scalar(select(Appointment).where(Appointment.patient_id == patient.id))
    assert response.headers["Location"] == f"/planning/appointments/{appointment.id}"
    assert "rendez-vous pris" in text(auth.client.get(response.headers["Location"]))
    assert "Créneaux libérés à proposer (0)" in text(auth.client.get("/"))
    late = auth.post(f"/freed-slots/{task.id}/offer", data={"entry_id": str(entry.id)})
    assert late.status_code == 409
    assert "plus en liste d'attente" in text(late)


def test_a_refused_offer_is_said_and_changes_nothing(auth, coordination, db_session):
    t = coordination
    patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, eligible=False)
    entry = waiting.add(db_session, t.coordinator, patient=patient, program=t.program, urgency=WaitingUrgency.URGENT)
    slot = free_next_monday(db_session, t)
    task = db_session.scalar(select(FreedSlotTask).where(FreedSlotTask.slot_id == slot.id))
    response = auth.post(f"/freed-slots/{task.id}/offer", data={"entry_id": str(entry.id)})
    assert response.status_code == 422
    assert "Vérifiez d'abord l'éligibilité du patient" in text(response)
    db_session.expire_all()
    assert db_session.get(FreedSlotTask, task.id).resolved_at is None
    assert db_session.get(WaitingEntry, entry.id).state is WaitingState.WAITING


def test_the_waiting_time_is_on_the_indicators_page(auth, coordination, db_session):
    t = coordination
    waiting.add(db_session, t.coordinator, patient=t.patient, program=t.program, urgency=WaitingUrgency.URGENT)
    db_session.commit()
    page = text(auth.client.get("/indicateurs?year=2026&month=11"))
    assert "Liste d'attente" in page
    assert "En attente aujourd'hui 1" in page


def test_the_desk_costs_the_same_queries_with_one_or_five_freed_slots(auth, coordination, db_session, engine):
    """P6: the freed slots' count is aggregated, the first ones and their matches read in a fixed number of
    queries."""
    t = coordination
    for _ in range(3):
        waiting.add(
            db_session, t.coordinator, patient=waiter(db_session, t), program=t.program, urgency=WaitingUrgency.URGENT
        )

    def free(weeks: int) -> None:
        slot = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(weeks=weeks)).astimezone(dt.UTC))
        db_session.add(FreedSlotTask(cpts_id=t.cpts.id, slot_id=slot.id, reason=FreedSlotReason.CANCELLATION))
        db_session.commit()

    def statements() -> int:
        with count_queries(engine) as seen:
            assert auth.client.get("/").status_code == 200
        return len(seen)

    free(0)
    one = statements()
    for weeks in range(1, 5):
        free(weeks)
    five = statements()
    assert "Créneaux libérés à proposer (5)" in text(auth.client.get("/"))
    assert one == five, (one, five)
