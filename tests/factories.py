"""The test data of every test: builders that take the session, the few choices a test makes (a profession, a
role, a state) as keyword traits and any column as an override, and return a flushed row.

Rows are made directly, except where a state is only meaningful with the traces a workflow leaves (a visit
carried out, a fee accrued): those builders go through the workflow. `Territory` is the small world most
scheduling, report and fee tests start from (the `territory` fixture in tests/conftest.py)."""

import datetime as dt
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
from sqlalchemy import select
from stdnum import luhn

from hub.db import utcnow
from hub.documents import store
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    CareTeamMember,
    Consent,
    ConsentKind,
    ConsentMethod,
    EligibilityAssessment,
    EligibilityOutcome,
    IdentityStatus,
    Modality,
    Organisation,
    OrganisationKind,
    OutboxMessage,
    OutboxState,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    ProgramKind,
    Referral,
    ReferralState,
    Report,
    ReportKind,
    ReportState,
    Resource,
    ResourceKind,
    Role,
    SessionProgram,
    Sex,
    Slot,
    TeleexpertiseAttachment,
    TeleexpertiseRequest,
    TeleexpertiseState,
    User,
    UserRole,
)
from hub.services import accounts
from tests import ZONE
from workflows import appointments, completion, fees, reports

PARIS = ZoneInfo(ZONE)
NOW = dt.datetime(2026, 11, 16, 9, 0, tzinfo=PARIS)  # a Monday morning
MONDAY_14H = dt.datetime(2026, 11, 23, 14, 0, tzinfo=PARIS)
# An in-person care of the patient a booker attests for a télésoin session (within the 12 months before it).
SEEN_ON = dt.date(2026, 10, 1)

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


# --- identifiers ---------------------------------------------------------------------------------------


def valid_rpps() -> str:
    base = f"1{next(_counter):09d}"
    return base + luhn.calc_check_digit(base)


def valid_nir(*, sex: Sex, birth_date: dt.date, birth_place: str = "24322", order: int | None = None) -> str:
    order = next(_counter) % 1000 if order is None else order
    first = "1" if sex is Sex.MALE else "2"
    body = f"{first}{birth_date.year % 100:02d}{birth_date.month:02d}{birth_place}{order:03d}"
    numeric = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - numeric % 97:02d}"


def now() -> dt.datetime:
    return utcnow()


# --- organisations, professionals, accounts --------------------------------------------------------------


def cpts(session, name: str | None = None) -> Organisation:
    org = Organisation(name=name or f"CPTS test {next(_counter)}", kind=OrganisationKind.CPTS)
    session.add(org)
    session.flush()
    return org


def organisation(session, cpts_org, **overrides) -> Organisation:
    values = {"name": f"Structure {next(_counter)}", "kind": OrganisationKind.PHARMACY, "cpts_id": cpts_org.id}
    org = Organisation(**(values | overrides))
    session.add(org)
    session.flush()
    return org


def professional(session, cpts_org, profession: Profession = Profession.NURSE, **overrides) -> Professional:
    n = next(_counter)
    values = {
        "cpts_id": cpts_org.id,
        "rpps": None if profession is Profession.COORDINATOR else valid_rpps(),
        "last_name": f"Nom{n}",
        "first_name": f"Prénom{n}",
        "profession": profession,
        "specialty": "Cardiologie" if profession is Profession.SPECIALIST else None,
    }
    pro = Professional(**(values | overrides))
    session.add(pro)
    session.flush()
    return pro


def user(session, cpts_org, *roles: Role, professional_row=None, with_totp: bool = True, **overrides) -> User:
    """An account with the given roles (a professional's by default, then with a nurse of its own)."""
    roles = roles or (Role.PROFESSIONAL,)
    if Role.PROFESSIONAL in roles and professional_row is None:
        professional_row = professional(session, cpts_org)
    n = next(_counter)
    values = {
        "login": f"user{n}",
        "display_name": f"Utilisateur {n}",
        "password_hash": accounts.hash_password(PASSWORD),
        "cpts_id": cpts_org.id,
        "professional_id": professional_row.id if professional_row else None,
        "totp_secret": pyotp.random_base32() if with_totp else None,
        "role_rows": [UserRole(role=r) for r in roles],
    }
    row = User(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def clinician(session, cpts_org, profession: Profession = Profession.NURSE, **professional_fields) -> User:
    """The account of a new professional of `profession` (the columns given are the professional's)."""
    row = professional(session, cpts_org, profession, **professional_fields)
    return user(session, cpts_org, Role.PROFESSIONAL, professional_row=row)


def coordinator(session, cpts_org, **professional_fields) -> User:
    """A coordinator's account with a professional row of its own (profession « coordinateur »)."""
    row = professional(session, cpts_org, Profession.COORDINATOR, **professional_fields)
    return user(session, cpts_org, Role.COORDINATOR, professional_row=row)


# --- patients: identity, consents, eligibility, care team ----------------------------------------------

QUALIFIED_INS_OID = "1.2.250.1.213.1.4.8"


def letters(n: int) -> str:
    """A number spelt in letters A–Z (bijective base 26): a unique name an identity trait may hold (I5)."""
    spelt = ""
    while n:
        n, digit = divmod(n - 1, 26)
        spelt = chr(ord("A") + digit) + spelt
    return spelt


def patient(session, cpts_org, *, qualified: bool = False, **overrides) -> Patient:
    """A patient with a provisional identity, or a qualified one (an INS) with `qualified=True`."""
    n = next(_counter)
    values = {
        "cpts_id": cpts_org.id,
        "birth_name": f"PATIENT {letters(n)}",
        "first_birth_given_name": "MARIE",
        "birth_date": dt.date(1950, 1 + n % 12, 1 + n % 28),
        "sex": Sex.FEMALE,
        "birth_place_insee": "24322",
    }
    row = Patient(**(values | overrides))
    session.add(row)
    session.flush()
    if qualified:
        qualify(session, row)
    return row


def qualify(session, patient_row) -> Patient:
    """The patient's identity qualified: an INS (a NIR) and its OID."""
    patient_row.ins_matricule = valid_nir(sex=patient_row.sex, birth_date=patient_row.birth_date)
    patient_row.ins_oid = QUALIFIED_INS_OID
    patient_row.identity_status = IdentityStatus.QUALIFIED
    session.flush()
    return patient_row


def consent(
    session, patient_row, *, recorded_by, kind: ConsentKind = ConsentKind.TELEHEALTH, collected_at=None, **overrides
) -> Consent:
    """An oral consent recorded by `recorded_by` (a telehealth consent of three days ago by default)."""
    values = {
        "patient_id": patient_row.id,
        "kind": kind,
        "method": ConsentMethod.ORAL,
        "recorded_by_user_id": recorded_by.id,
        "collected_at": collected_at or now() - dt.timedelta(days=3),
    }
    values["collected_on"] = values["collected_at"].astimezone(PARIS).date()
    row = Consent(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def in_care_team(session, patient_row, professional_row) -> None:
    session.add(CareTeamMember(patient_id=patient_row.id, professional_id=professional_row.id))
    session.flush()


def consenting_patient(session, cpts_org, *, recorded_by, eligible: bool = True, **overrides):
    """A patient with a valid telehealth consent and, unless `eligible=False`, a favourable eligibility
    checklist for both remote modalities (booking a remote session requires one)."""
    row = patient(session, cpts_org, **overrides)
    consent(session, row, recorded_by=recorded_by)
    if eligible:
        eligible_for_remote_care(session, row, assessed_by=recorded_by)
    session.flush()
    session.refresh(row)
    return row


ELIGIBLE_ANSWERS = {
    "profession": "infirmier",
    "act_kind": "follow_up",
    "clinical_situation_compatible": True,
    "can_communicate_remotely": True,
    "can_use_tools": True,
    "physical_factors_ok": True,
    "psychological_factors_ok": True,
    "social_factors_ok": True,
    "needs_direct_contact": False,
    "needs_equipment_not_at_hand": False,
    "is_first_care": False,
}


def eligible_for_remote_care(session, patient_row, *, assessed_by, modalities=None, **overrides):
    """Recorded eligibility checklists (outcome « éligible » unless overridden) for the given modalities."""
    modalities = modalities or (Modality.TELESOIN, Modality.ASSISTED_TELECONSULTATION)
    rows = []
    for modality in modalities:
        values = {
            "patient_id": patient_row.id,
            "assessed_by_user_id": assessed_by.id,
            "assessed_at": now() - dt.timedelta(days=2),
            "modality": modality,
            "answers": json.dumps(ELIGIBLE_ANSWERS | {"modality": modality.value}),
            "outcome": EligibilityOutcome.ELIGIBLE,
            "reasons": "[]",
        }
        rows.append(EligibilityAssessment(**(values | overrides)))
    session.add_all(rows)
    session.flush()
    return rows


# --- programs and slots ----------------------------------------------------------------------------------


def officine(session, cpts_org, **pharmacist_fields) -> tuple[Organisation, User]:
    """An officine of the CPTS and the account of its pharmacist, who accompanies teleconsultations."""
    organisation_row = organisation(session, cpts_org, kind=OrganisationKind.PHARMACY)
    pharmacist = professional(
        session, cpts_org, Profession.PHARMACIST, accompanies_teleconsultation=True, **pharmacist_fields
    )
    pharmacist.organisations = [organisation_row]
    session.flush()
    return organisation_row, user(session, cpts_org, Role.PROFESSIONAL, professional_row=pharmacist)


def program(
    session, cpts_org, *, performer=None, telesoin: bool = False, at_officine=None, **overrides
) -> SessionProgram:
    """A weekly Monday 14:00 assisted cardiology program: 3 slots of 15 min, the IDEL 20 min before
    and 25 min after. With `telesoin=True`, a télésoin program of the performer: no accompaniment. With
    `at_officine` (an officine), the program of its teleconsultations, its pharmacist there for the hour."""
    performer = performer or professional(session, cpts_org, Profession.SPECIALIST)
    values = {
        "cpts_id": cpts_org.id,
        "name": "Téléconsultation cardiologie CH Périgueux",
        "kind": ProgramKind.ASSISTED_TELECONSULTATION,
        "performer_id": performer.id,
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start_local": dt.datetime(2026, 1, 5, 14, 0),
        "zone": "Europe/Paris",
        "valid_from": dt.date(2026, 1, 5),
        "slot_count": 3,
        "slot_minutes": 15,
        "accompaniment_before_minutes": 20,
        "accompaniment_after_minutes": 25,
    }
    if telesoin:
        values |= {"kind": ProgramKind.TELESOIN, "accompaniment_before_minutes": 0, "accompaniment_after_minutes": 0}
    if at_officine is not None:
        values |= {
            "kind": ProgramKind.PHARMACY_TELECONSULTATION,
            "name": f"Téléconsultation en officine – {at_officine.name}",
            "organisation_id": at_officine.id,
            "slot_interval_minutes": 60,
        }
    row = SessionProgram(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def resource(session, cpts_org, kind: ResourceKind = ResourceKind.KIT, **overrides) -> Resource:
    """A resource in service: by default the connected ECG case of the VIVEVAL Monday."""
    values = {"cpts_id": cpts_org.id, "kind": kind, "name": f"Mallette ECG connectée n° {next(_counter)}"}
    row = Resource(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def slot(session, program_row, starts_at: dt.datetime, *, minutes: int | None = None) -> Slot:
    length = dt.timedelta(minutes=minutes or program_row.slot_minutes)
    row = Slot(
        program_id=program_row.id,
        occurrence_start=starts_at,
        position=0,
        starts_at=starts_at,
        ends_at=starts_at + length,
    )
    session.add(row)
    session.flush()
    return row


# --- appointments ----------------------------------------------------------------------------------------


def appointment(
    session,
    *,
    patient_row,
    performer,
    accompanying,
    created_by,
    starts_at: dt.datetime,
    minutes: int = 15,
    state: AppointmentState = AppointmentState.CONFIRMED,
    **overrides,
) -> Appointment:
    """An assisted teleconsultation at the patient's home as a bare row (no slot, no holds, no offer): the
    performer for `minutes`, the accompanying IDEL 15 min before to 30 min after. For the calendar and the
    plannings; a visit that the workflows should know is made with `visit`."""
    starts_at = starts_at.astimezone(dt.UTC)
    ends_at = starts_at + dt.timedelta(minutes=minutes)
    values = {
        "cpts_id": patient_row.cpts_id,
        "kind": AppointmentKind.ASSISTED_TELECONSULTATION,
        "state": state,
        "patient_id": patient_row.id,
        "performer_id": performer.id,
        "accompanying_id": accompanying.id,
        "place_kind": PlaceKind.HOME,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "accompaniment_starts_at": starts_at - dt.timedelta(minutes=15),
        "accompaniment_ends_at": ends_at + dt.timedelta(minutes=30),
        "created_by_user_id": created_by.id,
        "sequence": 0,
    }
    row = Appointment(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def in_person_care(session, patient_row, performer, day: dt.date, *, created_by) -> Appointment:
    """A care the performer gave the patient in person on `day` (10:00 local), done, as the hub records it."""
    starts_at = dt.datetime.combine(day, dt.time(10), tzinfo=PARIS).astimezone(dt.UTC)
    row = Appointment(
        cpts_id=patient_row.cpts_id,
        kind=AppointmentKind.IN_PERSON,
        state=AppointmentState.DONE,
        patient_id=patient_row.id,
        performer_id=performer.id,
        place_kind=PlaceKind.PRACTICE,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=30),
        created_by_user_id=created_by.id,
    )
    session.add(row)
    session.flush()
    return row


FULL_CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}


def check_in(session, user_row, appointment_row) -> None:
    """The IDEL's arrival with the traces the check-in requires (identity, location, call-back phone)."""
    appointments.check_in(
        session,
        user_row,
        appointment_row,
        identity_method="CNI",
        patient_location="Cabinet",
        callback_phone="0612345678",
    )


def carry_out(session, idel_user, appointment_row) -> None:
    """The visit as the IDEL lives it: confirmed, the patient checked in, the checklist saved before the start,
    the session done at its end."""
    appointments.confirm(session, idel_user, appointment_row, now=NOW)
    check_in(session, idel_user, appointment_row)
    save_checklist(session, idel_user, appointment_row)
    completion.complete(session, idel_user, appointment_row, now=appointment_row.ends_at)


def save_checklist(session, user_row, appointment_row, items=FULL_CHECKLIST) -> None:
    """The HAS pre-session checklist, saved a quarter of an hour before the session starts."""
    before = appointment_row.starts_at - dt.timedelta(minutes=15)
    appointments.save_checklist(session, user_row, appointment_row, items=items, now=before)


_VISIT_STEPS = (AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN, AppointmentState.DONE)


def visit(
    session,
    t: "Territory",
    starts_at: dt.datetime = MONDAY_14H,
    *,
    state: AppointmentState = AppointmentState.PROPOSED,
    patient_row=None,
    place_kind: PlaceKind = PlaceKind.DEDICATED_PLACE,
    now: dt.datetime | None = None,
) -> Appointment:
    """A session of the territory's program booked by its coordinator through the workflow (the patient's
    own IDEL asked first), then taken by that IDEL to `state`: proposed, confirmed, checked_in or done."""
    slot_row = slot(session, t.program, starts_at.astimezone(dt.UTC))
    row = appointments.book(
        session, t.coordinator, slot=slot_row, patient=patient_row or t.patient, place_kind=place_kind, now=now
    )
    if state is AppointmentState.DONE:
        carry_out(session, t.idel_user, row)
    elif state in _VISIT_STEPS:
        appointments.confirm(session, t.idel_user, row, now=NOW)
        if state is AppointmentState.CHECKED_IN:
            save_checklist(session, t.idel_user, row)
            check_in(session, t.idel_user, row)
    elif state is not AppointmentState.PROPOSED:
        raise ValueError(f"no visit builder for the state {state}")
    return row


def assistance_done(session, program_row, pharmacist_user, patient_row, starts_at: dt.datetime) -> Appointment:
    """A teleconsultation of an officine's program accompanied by its pharmacist, done, as a bare row (no slot,
    no holds), its fees accrued as a completion accrues them."""
    row = appointment(
        session,
        patient_row=patient_row,
        performer=program_row.performer,
        accompanying=pharmacist_user.professional,
        created_by=pharmacist_user,
        starts_at=starts_at,
        state=AppointmentState.DONE,
        program_id=program_row.id,
        place_kind=PlaceKind.PHARMACY,
    )
    fees.accrue_appointment(session, row, zone=program_row.zone)
    return row


# What a kiné records of the six rituals of a télésoin session (seed 000): enough to complete it.
KINE_RITUALS = {
    "opening_brief": True,
    "telesoin_consent": True,
    "safety_privacy": True,
    "proms": [{"name": "EVA douleur", "value": "6/10"}, {"name": "Timed Up and Go", "value": "14 s"}],
    "stop_criteria": "Douleur au-delà de 7/10 ou vertiges",
    "teach_back": True,
    "structured_feedback": True,
    "feedback_notes": "3 séries de 10, RPE 5",
    "plan": "Exercices d'équilibre chaque matin ; prochaine séance jeudi",
    "reinforcement_message": True,
}


def telesoin_session(
    session,
    t: "Territory",
    *,
    performer,
    state: AppointmentState = AppointmentState.CHECKED_IN,
    starts_at: dt.datetime = MONDAY_14H,
) -> Appointment:
    """A 30-minute télésoin session of `performer` (a kiné's TMK 8 rééducation) with the territory's patient at
    home, in a télésoin program of theirs, as a bare row in `state`: checked in (its checklist saved) by default."""
    program_row = program(session, t.cpts, performer=performer, telesoin=True, slot_minutes=30)
    slot_row = slot(session, program_row, starts_at.astimezone(dt.UTC))
    checked = state is not AppointmentState.CONFIRMED
    row = Appointment(
        cpts_id=t.cpts.id,
        kind=AppointmentKind.TELESOIN,
        state=state,
        patient_id=t.patient.id,
        slot_id=slot_row.id,
        program_id=program_row.id,
        performer_id=performer.id,
        place_kind=PlaceKind.HOME,
        starts_at=slot_row.starts_at,
        ends_at=slot_row.ends_at,
        telesoin_act="reeducation_membre_rachis",
        act_coefficient=8,
        created_by_user_id=t.coordinator.id,
        confirmed_at=now(),
        identity_checked_by_user_id=t.coordinator.id if checked else None,
        identity_checked_at=now() if checked else None,
        identity_check_method="document" if checked else None,
        patient_location="Domicile" if checked else None,
        callback_phone="0612345678" if checked else None,
        # Checked in, it had its HAS checklist saved a quarter of an hour before the start.
        checklist=json.dumps(FULL_CHECKLIST, sort_keys=True) if checked else "{}",
        checklist_saved_at=slot_row.starts_at - dt.timedelta(minutes=15) if checked else None,
        checklist_saved_by_user_id=t.coordinator.id if checked else None,
    )
    session.add(row)
    session.flush()
    return row


# --- referrals, reports, téléexpertise ------------------------------------------------------------------


def referral(
    session, patient_row, *, author: User, state: ReferralState = ReferralState.SUBMITTED, **overrides
) -> Referral:
    """A GP's referral of the patient as a row in `state` (submitted by default, today)."""
    values = {
        "cpts_id": patient_row.cpts_id,
        "patient_id": patient_row.id,
        "author_id": author.professional_id,
        "created_by_user_id": author.id,
        "reason": "Dyspnée d'effort",
        "state": state,
        "submitted_at": None if state is ReferralState.DRAFT else now(),
    }
    row = Referral(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def report(
    session,
    patient_row,
    *,
    author,
    created_by,
    signed: bool = False,
    appointment_row=None,
    upload_dir=None,
    **overrides,
) -> Report:
    """A teleconsultation report of the patient by `author` (a professional): a draft, or with `signed=True`
    signed now, as reports.sign leaves it (its own root), its frozen PDF stored in `upload_dir` if given."""
    values = {
        "cpts_id": patient_row.cpts_id,
        "kind": ReportKind.TELECONSULTATION,
        "patient_id": patient_row.id,
        "author_id": author.id,
        "performed_at": appointment_row.starts_at if appointment_row else now(),
        "created_by_user_id": created_by.id,
    }
    if appointment_row is not None:
        values["appointment_id"] = appointment_row.id
    if signed:
        values |= {"state": ReportState.SIGNED, "signed_at": now()}
    if upload_dir is not None:
        pdf = b"%PDF-1.4 compte rendu"
        values |= {"pdf_sha256": store.store_blob(upload_dir, pdf), "pdf_size": len(pdf)}
    values |= overrides
    row = Report(**values)
    session.add(row)
    session.flush()
    if values.get("state", ReportState.DRAFT) is not ReportState.DRAFT and row.root_id is None:
        row.root_id = row.id
        session.flush()
    return row


def teleexpertise_request(
    session,
    patient_row,
    *,
    requester: User,
    expert=None,
    consent_row,
    state: TeleexpertiseState = TeleexpertiseState.SUBMITTED,
    upload_dir=None,
    attachment: bytes | None = None,
    **overrides,
) -> TeleexpertiseRequest:
    """A téléexpertise request of `requester` (an account) about the patient, to `expert` (a professional)
    or to the pool, as a row in `state`; its frozen PDF and an `attachment` stored in `upload_dir`."""
    values = {
        "cpts_id": patient_row.cpts_id,
        "patient_id": patient_row.id,
        "requester_id": requester.professional_id,
        "expert_id": expert.id if expert else None,
        "consent_id": consent_row.id,
        "question": "Avis sur un souffle",
        "deadline_at": now() + dt.timedelta(days=7),
        "created_by_user_id": requester.id,
        "state": state,
    }
    if upload_dir is not None:
        pdf = b"%PDF-1.4 demande"
        values |= {"pdf_sha256": store.store_blob(upload_dir, pdf), "pdf_size": len(pdf)}
    row = TeleexpertiseRequest(**(values | overrides))
    session.add(row)
    session.flush()
    if attachment is not None:
        stored = store.store_upload(upload_dir, attachment, "photo.png", max_bytes=1024)
        session.add(TeleexpertiseAttachment(request_id=row.id, uploaded_by_user_id=requester.id, **stored))
        session.flush()
        session.expire(row, ["attachments"])
    return row


# --- fees and the outbox ---------------------------------------------------------------------------------

_fee_keys = itertools.count(1)


def fee_entry(session, professional_row, code: str, day: dt.date, *, patient=None, remote=False, **act_fields):
    """An act of the professional on `day`, accrued through the fee workflow (tariff, caps and all); the
    other fields of fees.Act as keywords (prescriber_rpps, coefficient…)."""
    act = fees.Act(
        professional_row,
        code,
        day,
        f"test:{next(_fee_keys)}",
        patient_id=patient.id if patient else None,
        is_remote_care=remote,
        **act_fields,
    )
    return fees.accrue(session, act)


def outbox_message(session, cpts_org, *, state: OutboxState = OutboxState.PENDING, **overrides) -> OutboxMessage:
    """A reminder e-mail waiting in the CPTS's outbox, or in `state`."""
    n = next(_counter)
    values = {
        "channel": "email",
        "recipient": f"pro{n}@example.org",
        "kind": "reminder",
        "payload": "{}",
        "idempotency_key": f"test:{n}",
        "cpts_id": cpts_org.id,
        "state": state,
    }
    row = OutboxMessage(**(values | overrides))
    session.add(row)
    session.flush()
    return row


# --- the territory ---------------------------------------------------------------------------------------


@dataclass
class Territory:
    cpts: object
    coordinator: object
    cardiologist: object
    idel: object
    idel_user: object
    other_idel: object
    other_idel_user: object
    patient: object
    program: object


def territory(session, cpts_org) -> Territory:
    """A coordinator, a cardiologist and the weekly program of their assisted teleconsultations, two IDELs
    of the same commune who accompany them, and a consenting, eligible patient of the first IDEL."""
    coordinator_user = coordinator(session, cpts_org, email="coord@example.org")
    cardiologist = professional(
        session, cpts_org, Profession.SPECIALIST, last_name="Lemaitre", email="cardio@example.org"
    )
    idel, other = (
        professional(
            session,
            cpts_org,
            Profession.NURSE,
            commune_insee="24571",
            accompanies_teleconsultation=True,
            email=email,
        )
        for email in ("idel@example.org", "idel2@example.org")
    )
    patient_row = consenting_patient(
        session, cpts_org, recorded_by=coordinator_user, commune_insee="24571", phone="0612345678"
    )
    in_care_team(session, patient_row, idel)
    program_row = program(session, cpts_org, performer=cardiologist)
    return Territory(
        cpts=cpts_org,
        coordinator=coordinator_user,
        cardiologist=cardiologist,
        idel=idel,
        idel_user=user(session, cpts_org, Role.PROFESSIONAL, professional_row=idel),
        other_idel=other,
        other_idel_user=user(session, cpts_org, Role.PROFESSIONAL, professional_row=other),
        patient=patient_row,
        program=program_row,
    )


# The program form as a coordinator fills it for the Monday cardiology session (the planner's pages).
PROGRAM_FORM = {
    "name": "Téléconsultation cardiologie CH Périgueux",
    "kind": "assisted_teleconsultation",
    "rule": "weekly",
    "weekday": "MO",
    "first_day": "2026-11-16",
    "time_of_day": "14:00",
    "slot_count": "3",
    "slot_minutes": "15",
    "accompaniment_before_minutes": "20",
    "accompaniment_after_minutes": "25",
    "own_idel_delay_minutes": "120",
    "horizon_weeks": "12",
    "skip_public_holidays": "true",
}


def rendered(session, report: Report, upload_dir) -> Report:
    """What the worker does after a signature (reports.render_pending, without its claim), in the test's session:
    the report's PDF and CDA rendered from its frozen content, its deliveries queued."""
    session.flush()
    frozen = session.scalar(select(Report.frozen_content).where(Report.id == report.id))
    assert frozen is not None, "signed: its content is frozen"
    reports.finish_rendering(session, report.id, reports.render_frozen(json.loads(frozen), upload_dir, zone=ZONE))
    session.refresh(report)
    return report


def sign_and_render(session, actor, report: Report, *, upload_dir, **options) -> Report:
    """reports.sign, then the worker's rendering: the signed report as its recipients get it."""
    return rendered(session, reports.sign(session, actor, report, upload_dir=upload_dir, **options), upload_dir)


def unwritable_upload_dir(tmp_path: Path) -> Path:
    """An upload directory the worker cannot write into (a file stands at its path): a real rendering failure."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    return blocked


def render_signed_reports(app) -> str:
    """The worker's rendering pass on the application's sessions (the test's transaction), after a signature
    made through the pages or the API."""
    hub = app.config["HUB"]
    upload_dir = Path(hub.get("UPLOAD_DIR") or Path(app.instance_path) / "uploads")
    return reports.render_pending(app.extensions["hub.sessions"], upload_dir=upload_dir, zone=hub["TIMEZONE"])


class Borrowed:
    """The test's session handed to code that opens sessions from a sessionmaker (the audit sequencer), as if from
    it, and left open at the `with`'s end."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        return self.session

    def __exit__(self, *exc):
        return False
