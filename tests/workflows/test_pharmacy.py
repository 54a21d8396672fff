"""Issue 11, item 6: teleconsultations assisted in an officine. The program names the officine; its pharmacist
accompanies every session (never the patient's IDEL, never another round of IDELs); a pharmacist accompanies
only there; each session done accrues the pharmacist's TLM with the remote doctor as prescriber."""

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from hub.errors import RuleViolation, ValidationFailed
from hub.models import (
    Appointment,
    AppointmentKind,
    FeeEntry,
    Modality,
    OrganisationKind,
    PlaceKind,
    Profession,
    ProgramKind,
    Slot,
    VisitOffer,
)
from tests import ZONE, factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments, fees, pathways, programs
from workflows.jobs import expiring_own_idel_offers

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def officine(db_session, territory):
    """The Manzac-sur-Vern officine, its pharmacist, and the weekly program of its teleconsultations."""
    organisation, pharmacist = factories.officine(db_session, territory.cpts, email="pharma@example.org")
    program = factories.program(db_session, territory.cpts, performer=territory.cardiologist, at_officine=organisation)
    return organisation, pharmacist, program


def book(db_session, t, program, *, place=PlaceKind.PHARMACY, **kwargs):
    """Monday's slot of the program; a refused booking writes nothing, so the slot is booked by the next try."""
    start = MONDAY_14H.astimezone(dt.UTC)
    slot = db_session.scalar(select(Slot).where(Slot.program_id == program.id, Slot.starts_at == start))
    slot = slot or factories.slot(db_session, program, start)
    return appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=place, now=NOW, **kwargs
    )


def program_data(t, organisation, **overrides) -> dict:
    return {
        "name": "Téléconsultation en officine",
        "kind": ProgramKind.PHARMACY_TELECONSULTATION,
        "performer_id": t.cardiologist.id,
        "organisation_id": organisation.id,
        "rrule": "FREQ=WEEKLY;BYDAY=TU",
        "first_day": dt.date(2026, 11, 17),
        "time_of_day": dt.time(9, 30),
        "slot_count": 3,
        "slot_minutes": 15,
        "slot_interval_minutes": 30,
        "accompaniment_before_minutes": 10,
        "accompaniment_after_minutes": 5,
    } | overrides


# --- the program -------------------------------------------------------------------------------------------


def test_an_officine_program_names_an_officine_that_has_a_pharmacist(db_session, territory, officine):
    t, (organisation, _pharmacist, _program) = territory, officine
    created = programs.create_program(db_session, t.coordinator, program_data(t, organisation), zone=ZONE, now=NOW)
    assert created.kind is ProgramKind.PHARMACY_TELECONSULTATION
    assert created.appointment_kind is AppointmentKind.ASSISTED_TELECONSULTATION
    msp = factories.organisation(db_session, t.cpts, kind=OrganisationKind.MSP)
    empty = factories.organisation(db_session, t.cpts, name="Pharmacie sans pharmacien")
    for organisation_id, message in (
        (None, "Choisissez l'officine"),
        (msp.id, "Choisissez l'officine"),
        (empty.id, "Aucun·e pharmacien·ne de Pharmacie sans pharmacien n'accompagne de téléconsultation"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            data = program_data(t, organisation, organisation_id=organisation_id)
            programs.create_program(db_session, t.coordinator, data, zone=ZONE, now=NOW)
        assert message in refused.value.errors["organisation_id"]
    with pytest.raises(ValidationFailed) as refused:
        programs.update_series(db_session, t.coordinator, created, {"organisation_id": msp.id}, now=NOW)
    assert "Choisissez l'officine" in refused.value.errors["organisation_id"]


def test_the_same_pharmacist_for_every_slot_needs_the_interval_of_their_window(db_session, territory, officine):
    t, (organisation, _pharmacist, _program) = territory, officine
    with pytest.raises(ValidationFailed) as refused:
        data = program_data(t, organisation, slot_interval_minutes=15)
        programs.create_program(db_session, t.coordinator, data, zone=ZONE, now=NOW)
    message = refused.value.errors["slot_interval_minutes"]
    assert "le pharmacien de l'officine serait réservé deux fois" in message and "au moins 30 min" in message
    # A nurse of the assisted program is not the same from one slot to the next: back to back is fine there.
    assisted = program_data(t, organisation, kind=ProgramKind.ASSISTED_TELECONSULTATION, slot_interval_minutes=None)
    assert programs.create_program(db_session, t.coordinator, assisted, zone=ZONE, now=NOW).id


# --- booking -----------------------------------------------------------------------------------------------


def test_booking_at_the_officine_proposes_its_pharmacist_without_another_round(db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    appointment = book(db_session, t, program)
    assert appointment.kind is AppointmentKind.ASSISTED_TELECONSULTATION
    assert appointment.accompanying_id == pharmacist.professional_id, "not the patient's own IDEL"
    assert appointment.place_kind is PlaceKind.PHARMACY
    offer = db_session.scalar(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id))
    assert (offer.professional_id, offer.round, offer.expires_at) == (pharmacist.professional_id, 1, None)
    far = NOW + dt.timedelta(days=30)
    assert db_session.scalars(select(Appointment.id).where(expiring_own_idel_offers(far))).all() == []
    assert appointments.offer_delay(program) is None and appointments.offer_delay(t.program) == 120
    appointments.confirm(db_session, pharmacist, appointment, now=NOW)
    assert appointment.state.value == "confirmed"


def test_an_officine_session_is_at_the_officine_with_one_of_its_pharmacists(db_session, territory, officine):
    t, (_organisation, _pharmacist, program) = territory, officine
    _elsewhere, other_pharmacist = factories.officine(db_session, t.cpts)
    cases = [
        ({"place": PlaceKind.DEDICATED_PLACE}, "place_kind", "choisissez « Officine »"),
        ({"accompanying": t.idel}, "accompanying_id", "un·e pharmacien·ne de l'officine"),
        ({"accompanying": other_pharmacist.professional}, "accompanying_id", "un·e pharmacien·ne de l'officine"),
    ]
    for kwargs, field, message in cases:
        with pytest.raises(ValidationFailed) as refused:
            book(db_session, t, program, **kwargs)
        assert message in refused.value.errors[field]
    assert db_session.scalar(select(func.count(Appointment.id))) == 0


def test_a_pharmacist_accompanies_only_at_an_officine(db_session, territory, officine):
    t, (_organisation, pharmacist, _program) = territory, officine
    with pytest.raises(ValidationFailed) as refused:
        book(db_session, t, t.program, place=PlaceKind.DEDICATED_PLACE, accompanying=pharmacist.professional)
    assert "un·e pharmacien·ne accompagne les téléconsultations en officine" in refused.value.errors["accompanying_id"]
    with pytest.raises(ValidationFailed) as refused:
        book(db_session, t, t.program, place=PlaceKind.PHARMACY)
    assert "programme de téléconsultation en officine" in refused.value.errors["place_kind"]


def test_an_officine_without_a_pharmacist_any_more_cannot_be_booked(db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    pharmacist.professional.is_active = False
    with pytest.raises(RuleViolation, match="Aucun·e pharmacien·ne de l'officine"):
        book(db_session, t, program)


def test_the_coordinator_proposes_the_session_to_another_pharmacist_of_the_officine(db_session, territory, officine):
    t, (organisation, pharmacist, program) = territory, officine
    colleague = factories.professional(db_session, t.cpts, Profession.PHARMACIST, accompanies_teleconsultation=True)
    colleague.organisations = [organisation]
    appointment = book(db_session, t, program)
    with pytest.raises(ValidationFailed):
        appointments.reassign(db_session, t.coordinator, appointment, idel=t.other_idel, now=NOW)
    assert appointment.accompanying_id == pharmacist.professional_id, "refused before any change"
    appointments.reassign(db_session, t.coordinator, appointment, idel=colleague, now=NOW)
    assert appointment.accompanying_id == colleague.id
    offers = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id)).all()
    assert {(o.professional_id, o.state.value, o.expires_at) for o in offers} == {
        (pharmacist.professional_id, "withdrawn", None),
        (colleague.id, "pending", None),
    }


def test_a_pathway_step_of_assisted_teleconsultation_may_be_booked_at_an_officine(db_session, territory, officine):
    _organisation, _pharmacist, program = officine
    assert program.kind in pathways.STEP_PROGRAM_KINDS[Modality.ASSISTED_TELECONSULTATION]


# --- the pharmacist's fee ----------------------------------------------------------------------------------


def test_a_session_done_accrues_the_pharmacists_tlm_with_the_doctor_as_prescriber(db_session, territory, officine):
    t, (_organisation, pharmacist, program) = territory, officine
    appointment = book(db_session, t, program)
    factories.carry_out(db_session, pharmacist, appointment)
    entry = db_session.scalar(select(FeeEntry).where(FeeEntry.professional_id == pharmacist.professional_id))
    assert (entry.code, entry.amount, entry.prescriber_rpps) == ("TLM", Decimal(0), t.cardiologist.rpps)
    assert entry.note == "Assistance n° 1 de l'année : rémunérée par bloc de 5."
    progress = fees.block_progress(db_session, pharmacist.professional, "TLM", day=dt.date(2026, 11, 23))
    assert (progress.acts, progress.paid, progress.until_next_block, progress.cap_reached) == (1, 0, 4, False)
