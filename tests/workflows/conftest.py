import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from hub.models import Profession, Role
from tests import factories

PARIS = ZoneInfo("Europe/Paris")
NOW = dt.datetime(2026, 11, 16, 9, 0, tzinfo=PARIS)  # a Monday morning
MONDAY_14H = dt.datetime(2026, 11, 23, 14, 0, tzinfo=PARIS)


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


@pytest.fixture
def territory(db_session, cpts) -> Territory:
    coordinator = factories.user(
        db_session,
        cpts,
        Role.COORDINATOR,
        professional_row=factories.professional(db_session, cpts, Profession.COORDINATOR, email="coord@example.org"),
    )
    cardiologist = factories.professional(
        db_session, cpts, Profession.SPECIALIST, last_name="Lemaitre", email="cardio@example.org"
    )
    idel = factories.professional(
        db_session,
        cpts,
        Profession.NURSE,
        commune_insee="24571",
        accompanies_teleconsultation=True,
        email="idel@example.org",
    )
    other = factories.professional(
        db_session,
        cpts,
        Profession.NURSE,
        commune_insee="24571",
        accompanies_teleconsultation=True,
        email="idel2@example.org",
    )
    patient = factories.consenting_patient(
        db_session, cpts, recorded_by=coordinator, commune_insee="24571", phone="0612345678"
    )
    factories.in_care_team(db_session, patient, idel)
    program = factories.program(db_session, cpts, performer=cardiologist)
    return Territory(
        cpts=cpts,
        coordinator=coordinator,
        cardiologist=cardiologist,
        idel=idel,
        idel_user=factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=idel),
        other_idel=other,
        other_idel_user=factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=other),
        patient=patient,
        program=program,
    )


def check_in(session, user, appointment):
    """The IDEL's arrival with the traces the check-in requires (identity, location, call-back phone)."""
    from workflows import appointments

    appointments.check_in(
        session, user, appointment, identity_method="CNI", patient_location="Cabinet", callback_phone="0612345678"
    )


FULL_CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}


def carry_out(session, idel_user, appointment):
    """The visit as the IDEL lives it: confirmed, the patient checked in, the session done."""
    from workflows import appointments, completion

    appointments.confirm(session, idel_user, appointment, now=NOW)
    check_in(session, idel_user, appointment)
    completion.complete(session, idel_user, appointment, checklist=FULL_CHECKLIST)


def telesoin_program(session, cpts, *, performer, **overrides):
    """A weekly télésoin program of one performer: no accompaniment around the slots."""
    from hub.models import ProgramKind

    values = {"kind": ProgramKind.TELESOIN, "accompaniment_before_minutes": 0, "accompaniment_after_minutes": 0}
    return factories.program(session, cpts, performer=performer, **(values | overrides))
