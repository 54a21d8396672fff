import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import delete, func, select

from hub.documents import store
from hub.errors import InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    AppointmentState,
    AuditEvent,
    Consent,
    EligibilityAssessment,
    OutboxMessage,
    Profession,
    Referral,
    ReferralState,
    Role,
    Urgency,
)
from hub.services.care import has_care_relation
from scheduling.bookings import BookingConflict
from tests import factories
from tests.factories import MONDAY_14H, NOW, carry_out
from tests.queries import count_queries
from workflows import appointments, referrals

S = ReferralState


@pytest.fixture
def gp(db_session, territory):
    professional = factories.professional(
        db_session, territory.cpts, Profession.GENERAL_PRACTITIONER, email="gp@example.org"
    )
    territory.patient.attending_gp_id = professional.id
    db_session.flush()
    return factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=professional)


def draft(db_session, t, gp, **data):
    values = {"patient_id": t.patient.id, "target_program_id": t.program.id, "reason": "Dyspnée d'effort"}
    return referrals.create(db_session, gp, values | data)


def in_state(db_session, t, gp, state: ReferralState) -> Referral:
    referral = draft(db_session, t, gp)
    referral.state = state
    referral.submitted_at = NOW - dt.timedelta(days=1)
    if state in (S.SCHEDULED, S.DONE):
        slot = factories.slot(db_session, t.program, MONDAY_14H + dt.timedelta(minutes=45))
        appointment = appointments.book(
            db_session, t.coordinator, slot=slot, patient=t.patient, place_kind="lieu_dedie", now=NOW
        )
        appointment.state = AppointmentState.DONE
        referral.appointment_id = appointment.id
    db_session.flush()
    return referral


def run(db_session, t, gp, verb, referral, uploads):
    if verb == "update":
        return referrals.update(db_session, gp, referral, {"history": "HTA"})
    if verb == "submit":
        return referrals.submit(db_session, gp, referral, consent_collected_on=NOW.date(), zone="Europe/Paris")
    if verb == "accept":
        return referrals.accept(db_session, t.coordinator, referral)
    if verb == "reject":
        return referrals.reject(db_session, t.coordinator, referral, reason="Hors périmètre")
    if verb == "schedule":
        slot = factories.slot(db_session, t.program, MONDAY_14H)
        return referrals.schedule(db_session, t.coordinator, referral, slot=slot, upload_dir=uploads, now=NOW)
    if verb == "cancel":
        return referrals.cancel(db_session, gp, referral, reason="Le patient a déménagé")
    if verb == "complete":
        return referrals.mark_done(db_session, t.coordinator, referral)
    if verb == "reopen":  # its session postponed (workflows.attendance)
        return referrals.reopen(db_session, t.coordinator, referral)
    raise AssertionError(verb)


TABLE = [
    (verb, state, state in sources)
    for verb, (sources, _target) in referrals.MACHINE.transitions.items()
    for state in ReferralState
]


@pytest.mark.parametrize(("verb", "state", "allowed"), TABLE, ids=[f"{v}-{s.value}" for v, s, _ in TABLE])
def test_every_transition_allowed_and_refused(db_session, territory, gp, verb, state, allowed, tmp_path):
    referral = in_state(db_session, territory, gp, state)
    if allowed:
        run(db_session, territory, gp, verb, referral, tmp_path)
        assert referral.state is referrals.MACHINE.transitions[verb][1]
        action = {"complete": "referral.done"}.get(verb, f"referral.{verb}")
        db_session.commit()  # the audit rows are written at commit
        assert db_session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))
    else:
        with pytest.raises(InvalidTransition, match="Action impossible : l'adressage est"):
            run(db_session, territory, gp, verb, referral, tmp_path)
        assert referral.state is state


def test_only_a_gp_refers_a_patient_they_can_see(db_session, territory, gp):
    with pytest.raises(RuleViolation, match="médecin généraliste"):
        draft(db_session, territory, territory.idel_user)
    stranger_patient = factories.patient(db_session, territory.cpts)
    with pytest.raises(ValidationFailed) as refused:
        draft(db_session, territory, gp, patient_id=stranger_patient.id)
    assert "patient_id" in refused.value.errors
    assert db_session.scalar(select(func.count()).select_from(Referral)) == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"target_program_id": 999999}, "target_program_id"),
        ({"target_program_id": None, "target_specialist_id": 999999}, "target_specialist_id"),
        ({"needs": ["télépathie"]}, "needs"),
    ],
)
def test_bad_input_is_refused_in_french_and_nothing_saved(db_session, territory, gp, data, field):
    with pytest.raises(ValidationFailed) as refused:
        draft(db_session, territory, gp, **data)
    assert refused.value.errors[field].endswith(".")
    assert db_session.scalar(select(func.count()).select_from(Referral)) == 0


def test_submit_needs_a_reason_a_target_and_the_consent(db_session, territory, gp):
    referral = draft(db_session, territory, gp, reason="", target_program_id=None)
    patient = factories.patient(db_session, territory.cpts, attending_gp_id=gp.professional_id)
    referral.patient_id, referral.patient = patient.id, patient
    with pytest.raises(ValidationFailed) as refused:
        referrals.submit(db_session, gp, referral, zone="Europe/Paris")
    assert set(refused.value.errors) == {"reason", "target_program_id", "consent_collected_on"}
    assert refused.value.errors["reason"] == "Indiquez le motif de l'adressage."
    assert referral.state is S.DRAFT
    assert db_session.scalar(select(func.count()).select_from(Consent).where(Consent.patient_id == patient.id)) == 0


def test_submit_records_the_consent_collected_by_the_gp(db_session, territory, gp):
    referral = draft(db_session, territory, gp)
    referrals.submit(db_session, gp, referral, consent_collected_on=dt.date(2026, 11, 2), zone="Europe/Paris")
    consent = db_session.get(Consent, referral.consent_id)
    assert consent.recorded_by_user_id == gp.id and consent.collected_on == dt.date(2026, 11, 2)
    assert consent.collected_at is None, "the GP gave the day only"
    other = draft(db_session, territory, gp)
    referrals.submit(db_session, gp, other, zone="Europe/Paris")  # links the existing valid consent
    assert other.consent_id is not None and other.state is S.SUBMITTED


def test_reject_needs_a_reason_and_tells_the_gp_without_health_data(db_session, territory, gp):
    referral = in_state(db_session, territory, gp, S.SUBMITTED)
    with pytest.raises(ValidationFailed, match="invalides"):
        referrals.reject(db_session, territory.coordinator, referral, reason="  ")
    assert referral.state is S.SUBMITTED
    referrals.reject(db_session, territory.coordinator, referral, reason="Relève d'une consultation en présentiel")
    db_session.flush()
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "referral_rejected"))
    assert message.recipient == "gp@example.org"
    assert "présentiel" not in json.dumps(message.payload) and "Dyspnée" not in json.dumps(message.payload)


def test_schedule_books_the_slot_and_proposes_the_idel(db_session, territory, gp, tmp_path):
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    slot = factories.slot(db_session, territory.program, MONDAY_14H)
    appointment = referrals.schedule(
        db_session, territory.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW
    )
    assert referral.state is S.SCHEDULED and referral.appointment_id == appointment.id
    assert appointment.accompanying_id == territory.idel.id


def test_scheduling_freezes_the_letter_under_its_hash(db_session, territory, gp, tmp_path):
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    slot = factories.slot(db_session, territory.program, MONDAY_14H)
    appointment = referrals.schedule(
        db_session, territory.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW
    )
    stored = store.read_stored(tmp_path, referral.letter_sha256)
    assert stored.startswith(b"%PDF-") and len(stored) == referral.letter_size
    assert hashlib.sha256(stored).hexdigest() == referral.letter_sha256
    assert referrals.letters_by_appointment(db_session, [appointment.id, 0]) == {appointment.id: referral}
    db_session.commit()  # the audit rows are written at commit
    audit = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "referral.schedule")).one()
    assert json.loads(audit.details)["letter_sha256"] == referral.letter_sha256


def test_a_refused_scheduling_freezes_no_letter(db_session, territory, gp, tmp_path):
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    db_session.execute(delete(EligibilityAssessment).where(EligibilityAssessment.patient_id == territory.patient.id))
    slot = factories.slot(db_session, territory.program, MONDAY_14H)
    with pytest.raises(RuleViolation, match="éligibilité"):
        referrals.schedule(db_session, territory.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW)
    assert referral.state is S.ACCEPTED and referral.letter_sha256 is None and not any(tmp_path.iterdir())


def test_a_booking_conflict_leaves_the_referral_accepted(db_session, territory, gp, tmp_path):
    slot = factories.slot(db_session, territory.program, MONDAY_14H)
    appointments.book(
        db_session, territory.coordinator, slot=slot, patient=territory.patient, place_kind="lieu_dedie", now=NOW
    )
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    other_slot = factories.slot(db_session, territory.program, MONDAY_14H + dt.timedelta(minutes=15))
    with pytest.raises(BookingConflict):
        referrals.schedule(db_session, territory.coordinator, referral, slot=other_slot, upload_dir=tmp_path, now=NOW)
    assert referral.state is S.ACCEPTED and referral.appointment_id is None


def test_schedule_refuses_a_slot_of_another_program(db_session, territory, gp, tmp_path):
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    other = factories.program(db_session, territory.cpts)
    slot = factories.slot(db_session, other, MONDAY_14H)
    with pytest.raises(ValidationFailed, match="invalides"):
        referrals.schedule(db_session, territory.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW)
    assert referral.state is S.ACCEPTED


def test_done_only_when_the_appointment_is_done(db_session, territory, gp, tmp_path):
    referral = in_state(db_session, territory, gp, S.ACCEPTED)
    slot = factories.slot(db_session, territory.program, MONDAY_14H)
    appointment = referrals.schedule(
        db_session, territory.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW
    )
    with pytest.raises(RuleViolation, match="pas encore eu lieu"):
        referrals.mark_done(db_session, territory.coordinator, referral)
    appointment.state = AppointmentState.DONE
    assert referrals.done_for_appointment(db_session, territory.coordinator, appointment) is referral
    assert referral.state is S.DONE


def test_the_targeted_specialist_and_the_author_see_the_patient(db_session, territory, gp):
    specialist = factories.professional(db_session, territory.cpts, Profession.SPECIALIST)
    patient = factories.patient(db_session, territory.cpts)
    assert not has_care_relation(db_session, specialist.id, patient)
    referral = Referral(
        cpts_id=territory.cpts.id,
        patient_id=patient.id,
        author_id=gp.professional_id,
        created_by_user_id=gp.id,
        target_specialist_id=specialist.id,
        reason="Avis",
    )
    db_session.add(referral)
    db_session.flush()
    assert has_care_relation(db_session, gp.professional_id, patient)
    assert not has_care_relation(db_session, specialist.id, patient)  # a draft is the GP's only
    referral.state = S.SUBMITTED
    db_session.flush()
    assert has_care_relation(db_session, specialist.id, patient)


def test_the_patients_own_cardiologist_is_proposed_first(db_session, territory, gp):
    assert referrals.proposed_specialist(db_session, territory.patient) is None
    factories.in_care_team(db_session, territory.patient, territory.cardiologist)
    assert referrals.proposed_specialist(db_session, territory.patient) == territory.cardiologist


def test_triage_queue_most_urgent_first_then_oldest(db_session, territory, gp):
    made = {}
    for name, urgency, days in (
        ("old", Urgency.ROUTINE, 5),
        ("new", Urgency.ROUTINE, 1),
        ("urgent", Urgency.URGENT, 0),
    ):
        referral = in_state(db_session, territory, gp, S.SUBMITTED)
        referral.urgency, referral.submitted_at = urgency, NOW - dt.timedelta(days=days, hours=1)
        made[name] = referral
    in_state(db_session, territory, gp, S.DRAFT)
    db_session.flush()
    rows = referrals.triage_queue(db_session, territory.cpts.id, now=NOW)
    assert [r.referral for r in rows] == [made["urgent"], made["old"], made["new"]]
    assert rows[1].waiting == dt.timedelta(days=5, hours=1)


@pytest.mark.parametrize("query", ["triage", "mine"])
def test_lists_keep_a_constant_number_of_queries(db_session, engine, territory, gp, query):
    """P6: 3 or 30 referrals, the same number of queries."""
    counts = []
    for size in (3, 30):
        while db_session.scalar(select(func.count()).select_from(Referral)) < size:
            referral = in_state(db_session, territory, gp, S.SUBMITTED)
            referral.target_specialist_id, referral.target_program_id = territory.cardiologist.id, None
            factories.in_care_team(db_session, factories.patient(db_session, territory.cpts), territory.idel)
        db_session.flush()
        db_session.expire_all()
        with count_queries(engine) as statements:
            if query == "triage":
                rows = referrals.triage_queue(db_session, territory.cpts.id, now=NOW)
            else:
                rows, _ = referrals.referrals_of(db_session, Referral.author_id == gp.professional_id, now=NOW)
            for row in rows:  # what the pages show
                _ = (row.referral.patient.display_name, row.referral.author.full_name, row.referral.attachments)
                _ = row.referral.target_specialist.full_name
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_completing_the_appointment_completes_the_referral(db_session, territory, gp, tmp_path):
    t = territory
    referral = in_state(db_session, t, gp, S.ACCEPTED)
    slot = factories.slot(db_session, t.program, MONDAY_14H)
    appointment = referrals.schedule(db_session, t.coordinator, referral, slot=slot, upload_dir=tmp_path, now=NOW)
    idel_user = t.idel_user if appointment.accompanying_id == t.idel.id else t.other_idel_user
    carry_out(db_session, idel_user, appointment)
    assert referral.state is S.DONE


@pytest.mark.parametrize("state", [S.REJECTED, S.CANCELLED])
def test_a_closed_referral_gives_the_specialist_no_access(db_session, territory, gp, state):
    from hub.services.care import has_care_relation

    referral = in_state(db_session, territory, gp, state)
    if referral.target_specialist_id is None:
        referral.target_specialist_id = territory.cardiologist.id
    db_session.flush()
    assert not has_care_relation(db_session, territory.cardiologist.id, referral.patient)
