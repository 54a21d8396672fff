"""Test data builders. Each takes the session and keyword overrides and returns a flushed row."""

import datetime as dt
import itertools

import pyotp
from stdnum import luhn

from hub.db import utcnow
from hub.models import (
    CareTeamMember,
    Organisation,
    OrganisationKind,
    Patient,
    Profession,
    Professional,
    Role,
    Sex,
    User,
    UserRole,
)
from hub.services import accounts

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def valid_rpps() -> str:
    base = f"1{next(_counter):09d}"
    return base + luhn.calc_check_digit(base)


def valid_nir(*, sex: Sex, birth_date: dt.date, birth_place: str = "24322", order: int | None = None) -> str:
    order = next(_counter) % 1000 if order is None else order
    first = "1" if sex is Sex.MALE else "2"
    body = f"{first}{birth_date.year % 100:02d}{birth_date.month:02d}{birth_place}{order:03d}"
    numeric = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - numeric % 97:02d}"


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


def patient(session, cpts_org, **overrides) -> Patient:
    n = next(_counter)
    values = {
        "cpts_id": cpts_org.id,
        "birth_name": f"PATIENT{n}",
        "first_birth_given_name": "MARIE",
        "birth_date": dt.date(1950, 1 + n % 12, 1 + n % 28),
        "sex": Sex.FEMALE,
        "birth_place_insee": "24322",
    }
    row = Patient(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def in_care_team(session, patient_row, professional_row) -> None:
    session.add(CareTeamMember(patient_id=patient_row.id, professional_id=professional_row.id))
    session.flush()


def now() -> dt.datetime:
    return utcnow()


def program(session, cpts_org, *, performer=None, **overrides):
    """A weekly Monday 14:00 assisted cardiology program: 3 slots of 15 min, the IDEL 20 min before
    and 25 min after."""
    from hub.models import ProgramKind, SessionProgram

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
    row = SessionProgram(**(values | overrides))
    session.add(row)
    session.flush()
    return row


def slot(session, program_row, starts_at: dt.datetime, *, minutes: int | None = None):
    from hub.models import Slot

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


def consenting_patient(session, cpts_org, *, recorded_by, eligible: bool = True, **overrides):
    """A patient with a valid telehealth consent and, unless `eligible=False`, a favourable eligibility
    checklist for both remote modalities (booking a remote session requires one)."""
    from hub.models import Consent, ConsentKind, ConsentMethod

    row = patient(session, cpts_org, **overrides)
    session.add(
        Consent(
            patient_id=row.id,
            kind=ConsentKind.TELEHEALTH,
            method=ConsentMethod.ORAL,
            recorded_by_user_id=recorded_by.id,
            collected_at=now() - dt.timedelta(days=3),
        )
    )
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
    import json

    from hub.models import EligibilityAssessment, EligibilityOutcome, Modality

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
