"""The demo territory's schedule: the weekly assisted cardiology session of seed 004 (CH Périgueux,
connected ECG case, IDEL with the patient), a kiné télésoin session and the kiné's group session of respiratory
rehabilitation (six seats, four taken next Tuesday), with next Monday booked and last
Monday's teleconsultation done, its report waiting for the cardiologist in « Ma séance »; and a GP's weekly
teleconsultations at the Manzac-sur-Vern officine, its pharmacist with the patient: the last three weeks'
sessions done (their TLM accrued as any completion accrues it) and the next one booked."""

import datetime as dt
import random
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.demo.data import MANZAC_SUR_VERN, VERGT
from hub.demo.territory import pharmacy_name
from hub.models import (
    CareTeamMember,
    ConsentKind,
    Modality,
    Organisation,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    ProgramKind,
    Resource,
    ResourceKind,
    SessionProgram,
    Slot,
    TelesoinActCode,
    User,
)
from hub.services import directory
from hub.services.identity import has_valid_consent
from workflows import appointments, completion, eligibility, programs

CARDIOLOGY = "Téléconsultation cardiologie CH Périgueux"
TELEREHABILITATION = "Télésoin kinésithérapie – MSP Vergt"
GROUP_REHABILITATION = "Réhabilitation respiratoire BPCO en groupe (télésoin, kiné)"
GROUP_CAPACITY = 6
GROUP_BOOKED = 4  # next session: four of six seats taken, two left to book from the planning
OFFICINE = pharmacy_name(MANZAC_SUR_VERN)
OFFICINE_PROGRAM = f"Téléconsultation en officine – {OFFICINE}"
CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}  # the HAS checklist, all adults
OFFICINE_WEEKS_DONE = 3  # past weekly sessions, done: their nine assistances pass the 5th of the year


def load_demo_schedule(session: Session, cpts_id: int, *, now: dt.datetime, zone: str) -> bool:
    """Create the programs (in the territory's `zone`) and next Monday's bookings once; False when they
    already exist."""
    if session.scalar(
        select(SessionProgram.id).where(SessionProgram.cpts_id == cpts_id, SessionProgram.name == CARDIOLOGY)
    ):
        return False
    # The territory's coordinator and hospital, made by load_demo before this.
    coordinator = session.scalars(select(User).where(User.cpts_id == cpts_id, User.login == "coordination")).one()
    hospital = session.scalars(
        select(Organisation).where(Organisation.cpts_id == cpts_id, Organisation.name == "CH Périgueux")
    ).one()
    kit = Resource(
        cpts_id=cpts_id, organisation_id=hospital.id, kind=ResourceKind.KIT, name="Mallette ECG connectée n° 1"
    )
    session.add(kit)
    session.flush()  # the program names the kit
    cardiologist = _first(session, cpts_id, Profession.SPECIALIST, last_name="Lemaitre")
    cardiology = programs.create_program(
        session,
        coordinator,
        {
            "name": CARDIOLOGY,
            "kind": ProgramKind.ASSISTED_TELECONSULTATION,
            "performer_id": cardiologist.id,
            "organisation_id": hospital.id,
            "kit_id": kit.id,
            "rrule": "FREQ=WEEKLY;BYDAY=MO",
            "first_day": now.date(),
            "time_of_day": dt.time(14, 0),
            "slot_count": 3,
            "slot_minutes": 15,
            # One ECG case for the afternoon: each IDEL's hour with it follows the previous one.
            "slot_interval_minutes": 60,
            "accompaniment_before_minutes": 20,
            "accompaniment_after_minutes": 25,
        },
        zone=zone,
        now=now,
    )
    kine = _first(session, cpts_id, Profession.PHYSIOTHERAPIST)
    programs.create_program(
        session,
        coordinator,
        {
            "name": TELEREHABILITATION,
            "kind": ProgramKind.TELESOIN,
            "performer_id": kine.id,
            "rrule": "FREQ=WEEKLY;BYDAY=TH",
            "first_day": now.date(),
            "time_of_day": dt.time(10, 0),
            "slot_count": 4,
            "slot_minutes": 30,
        },
        zone=zone,
        now=now,
    )
    _group_rehabilitation(session, coordinator, kine, now=now, zone=zone)
    _book_next_session(session, coordinator, cardiology, now=now)
    _last_session_done(session, coordinator, cardiology, now=now)
    _officine_sessions(session, coordinator, now=now, zone=zone)
    return True


def _group_rehabilitation(session: Session, coordinator: User, kine: Professional, *, now: dt.datetime, zone: str):
    """The kiné's weekly group session of respiratory rehabilitation in télésoin, six seats, four taken next
    Tuesday: each participant with their own eligibility, act and (attested) in-person care."""
    program = programs.create_program(
        session,
        coordinator,
        {
            "name": GROUP_REHABILITATION,
            "kind": ProgramKind.TELESOIN,
            "performer_id": kine.id,
            "rrule": "FREQ=WEEKLY;BYDAY=TU",
            "first_day": now.date(),
            "time_of_day": dt.time(15, 0),
            "slot_count": 1,
            "slot_minutes": 60,
            "capacity": GROUP_CAPACITY,
        },
        zone=zone,
        now=now,
    )
    slot = session.scalars(select(Slot).where(Slot.program_id == program.id).order_by(Slot.starts_at).limit(1)).one()
    today = eligibility.local_day(now, zone)
    for patient in _officine_patients(session, coordinator.cpts_id)[-GROUP_BOOKED:]:
        eligibility.assess(
            session,
            coordinator,
            patient,
            {
                "modality": Modality.TELESOIN,
                "profession": Profession.PHYSIOTHERAPIST,
                "act_kind": "follow_up",
                "clinical_situation_compatible": True,
                "can_communicate_remotely": True,
                "can_use_tools": True,
                "aidant_present": False,
                "physical_factors_ok": True,
                "psychological_factors_ok": True,
                "social_factors_ok": True,
                "needs_direct_contact": False,
                "needs_equipment_not_at_hand": False,
                "is_first_care": False,
                # Frailty would steer them to an assisted teleconsultation instead (seed 003).
                "several_conditions": False,
                "illectronism": False,
                "mobility_issues": False,
            },
            zone=zone,
            on=today,
        )
        act = appointments.TelesoinAct(
            act=TelesoinActCode.RESPIRATORY, last_in_person_contact_on=today - dt.timedelta(days=30)
        )
        appointments.book(
            session, coordinator, slot=slot, patient=patient, place_kind=PlaceKind.HOME, telesoin=act, now=now
        )


def _officine_sessions(session: Session, coordinator: User, *, now: dt.datetime, zone: str) -> None:
    """A GP of Vergt teleconsults on Tuesday mornings patients who come to the Manzac-sur-Vern officine (no GP in
    the commune), its pharmacist with them. The program starts three weeks ago; the sessions of those weeks
    (in this calendar year) are done as the pharmacist lives them, the next session is booked."""
    officine = session.scalars(
        select(Organisation).where(Organisation.cpts_id == coordinator.cpts_id, Organisation.name == OFFICINE)
    ).one()
    gp = _first(session, coordinator.cpts_id, Profession.GENERAL_PRACTITIONER, commune_insee=VERGT)
    start = now - dt.timedelta(weeks=OFFICINE_WEEKS_DONE)
    program = programs.create_program(
        session,
        coordinator,
        {
            "name": OFFICINE_PROGRAM,
            "kind": ProgramKind.PHARMACY_TELECONSULTATION,
            "performer_id": gp.id,
            "organisation_id": officine.id,
            "rrule": "FREQ=WEEKLY;BYDAY=TU",
            "first_day": start.astimezone(ZoneInfo(zone)).date(),
            "time_of_day": dt.time(9, 30),
            "slot_count": 3,
            "slot_minutes": 15,
            # The pharmacist welcomes each patient 10 min before and stays 5 min after: 30 min a patient.
            "slot_interval_minutes": 30,
            "accompaniment_before_minutes": 10,
            "accompaniment_after_minutes": 5,
        },
        zone=zone,
        now=start,
    )
    pharmacist = directory.officine_pharmacists(session, officine.id)[0]  # the one each booking proposes
    pharmacist_user = session.scalars(select(User).where(User.professional_id == pharmacist.id)).one()
    slots = session.scalars(select(Slot).where(Slot.program_id == program.id).order_by(Slot.starts_at)).all()
    this_year = now.astimezone(ZoneInfo(zone)).year
    past = [s for s in slots if s.starts_at < now and s.starts_at.astimezone(ZoneInfo(zone)).year == this_year]
    upcoming = [s for s in slots if s.starts_at > now][: program.slot_count]
    patients = iter(_officine_patients(session, coordinator.cpts_id))
    for slot in past:
        booked_at = slot.starts_at - dt.timedelta(days=2)
        appointment = _book_at_officine(session, coordinator, slot, next(patients), now=booked_at, zone=zone)
        appointments.confirm(session, pharmacist_user, appointment, now=booked_at)
        appointments.check_in(
            session,
            pharmacist_user,
            appointment,
            identity_method="document",
            patient_location=f"{OFFICINE}, espace de confidentialité",
            callback_phone=appointment.patient.phone or "0553000000",
            now=slot.starts_at - dt.timedelta(minutes=5),
        )
        appointments.save_checklist(
            session, pharmacist_user, appointment, items=CHECKLIST, now=slot.starts_at - dt.timedelta(minutes=4)
        )
        completion.complete(session, pharmacist_user, appointment, now=slot.ends_at)
    for number, slot in enumerate(upcoming):
        appointment = _book_at_officine(session, coordinator, slot, next(patients), now=now, zone=zone)
        if number == 0:
            appointments.confirm(session, pharmacist_user, appointment, now=now)


def _book_at_officine(session, coordinator, slot, patient, *, now: dt.datetime, zone: str):
    _assess_eligibility(
        session, coordinator, patient, PlaceKind.PHARMACY, now=now, zone=zone, by=Profession.GENERAL_PRACTITIONER
    )
    return appointments.book(session, coordinator, slot=slot, patient=patient, place_kind=PlaceKind.PHARMACY, now=now)


def _officine_patients(session: Session, cpts_id: int) -> list[Patient]:
    """Adults with a telehealth consent, those of Manzac-sur-Vern first."""
    adults = session.scalars(
        select(Patient)
        .where(Patient.cpts_id == cpts_id, Patient.birth_date < dt.date(2000, 1, 1))
        .order_by((Patient.commune_insee != MANZAC_SUR_VERN), Patient.id)
    ).all()
    return [patient for patient in adults if has_valid_consent(patient, ConsentKind.TELEHEALTH)]


def _first(session: Session, cpts_id: int, profession: Profession, **filters) -> Professional:
    query = select(Professional).where(Professional.cpts_id == cpts_id, Professional.profession == profession)
    for key, value in filters.items():
        query = query.where(getattr(Professional, key) == value)
    return session.scalars(query.order_by(Professional.id).limit(1)).one()


def _book_next_session(session: Session, coordinator: User, program: SessionProgram, *, now: dt.datetime) -> None:
    """Book the three slots of the next Monday for elderly patients who have their own IDEL; the first
    visit is confirmed, the others wait for the IDEL's answer."""
    slots = session.scalars(select(Slot).where(Slot.program_id == program.id).order_by(Slot.starts_at).limit(3)).all()
    candidates = (
        session.scalars(
            select(Patient)
            .join(CareTeamMember, CareTeamMember.patient_id == Patient.id)
            .join(Professional, Professional.id == CareTeamMember.professional_id)
            .where(
                Patient.cpts_id == program.cpts_id,
                Professional.profession == Profession.NURSE,
                Patient.birth_date < dt.date(1950, 1, 1),
            )
            .order_by(Patient.id)
        )
        .unique()
        .all()
    )
    rng = random.Random(len(candidates))  # noqa: S311 (demo data)
    used_idels: set[int] = set()
    places = [PlaceKind.HOME, PlaceKind.DEDICATED_PLACE, PlaceKind.DEDICATED_PLACE]
    for slot, place in zip(slots, places, strict=False):
        for patient in rng.sample(candidates, len(candidates)):
            idel = appointments.own_idel(session, patient)
            if (
                idel is None
                or idel.id in used_idels
                or (place is PlaceKind.HOME and not idel.serves(patient.commune_insee))
            ):
                continue
            _assess_eligibility(session, coordinator, patient, place, now=now, zone=program.zone)
            appointment = appointments.book(
                session, coordinator, slot=slot, patient=patient, place_kind=place, accompanying=idel, now=now
            )
            first_booking = not used_idels
            used_idels.add(idel.id)
            if first_booking and has_valid_consent(patient, ConsentKind.TELEHEALTH):
                idel_user = session.scalars(select(User).where(User.professional_id == idel.id)).one()
                appointments.confirm(session, idel_user, appointment, now=now)
            break


def _last_session_done(session: Session, coordinator: User, program: SessionProgram, *, now: dt.datetime) -> None:
    """Last Monday at 14:00: one patient seen with their IDEL at the MSP, the session done; the report is
    the cardiologist's to write."""
    zone = ZoneInfo(program.zone)
    today = now.astimezone(zone).date()
    monday = today - dt.timedelta(days=today.weekday() or 7)
    start = dt.datetime.combine(monday, dt.time(14, 0), tzinfo=zone).astimezone(dt.UTC)
    slot = Slot(
        program_id=program.id,
        occurrence_start=start,
        position=0,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=program.slot_minutes),
        is_exception=True,  # laid down by hand: the program started after it
    )
    session.add(slot)
    session.flush()
    booked_at = start - dt.timedelta(days=3)
    for patient in _elderly_with_own_idel(session, program.cpts_id):
        idel = appointments.own_idel(session, patient)
        idel_user = session.scalar(select(User).where(User.professional_id == idel.id)) if idel else None
        if idel_user is None or not has_valid_consent(patient, ConsentKind.TELEHEALTH):
            continue
        _assess_eligibility(session, coordinator, patient, PlaceKind.DEDICATED_PLACE, now=booked_at, zone=program.zone)
        appointment = appointments.book(
            session,
            coordinator,
            slot=slot,
            patient=patient,
            place_kind=PlaceKind.DEDICATED_PLACE,
            accompanying=idel,
            now=booked_at,
        )
        appointments.confirm(session, idel_user, appointment, now=booked_at)
        appointments.check_in(
            session,
            idel_user,
            appointment,
            identity_method="CNI",
            patient_location="MSP de Vergt, salle de téléconsultation",
            callback_phone=patient.phone or "0553000000",
            now=start - dt.timedelta(minutes=10),
        )
        appointments.save_checklist(
            session, idel_user, appointment, items=CHECKLIST, now=start - dt.timedelta(minutes=5)
        )
        completion.complete(session, idel_user, appointment, now=start + dt.timedelta(minutes=20))
        return


def _elderly_with_own_idel(session: Session, cpts_id: int) -> list[Patient]:
    return list(
        session.scalars(
            select(Patient)
            .join(CareTeamMember, CareTeamMember.patient_id == Patient.id)
            .join(Professional, Professional.id == CareTeamMember.professional_id)
            .where(
                Patient.cpts_id == cpts_id,
                Professional.profession == Profession.NURSE,
                Patient.birth_date < dt.date(1950, 1, 1),
            )
            .order_by(Patient.id.desc())
        ).unique()
    )


def _assess_eligibility(
    session: Session,
    coordinator: User,
    patient: Patient,
    place: PlaceKind,
    *,
    now,
    zone: str,
    by: Profession = Profession.SPECIALIST,
) -> None:
    """The coordinator's HAS checklist before the booking: an elderly patient with several conditions (and,
    seen at home, mobility issues) is steered to the assisted teleconsultation (seed 003)."""
    eligibility.assess(
        session,
        coordinator,
        patient,
        {
            "modality": Modality.ASSISTED_TELECONSULTATION,
            "profession": by,
            "act_kind": "follow_up",
            "clinical_situation_compatible": True,
            "can_communicate_remotely": True,
            "can_use_tools": False,
            "aidant_present": False,
            "physical_factors_ok": True,
            "psychological_factors_ok": True,
            "social_factors_ok": True,
            "needs_direct_contact": False,
            "needs_equipment_not_at_hand": False,  # the IDEL brings the connected ECG case
            "is_first_care": False,
            "several_conditions": True,
            "illectronism": True,
            "mobility_issues": place is PlaceKind.HOME,
        },
        zone=zone,
        on=eligibility.local_day(now, zone),
    )
