import datetime as dt
from decimal import Decimal
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select

from hub.cli import hub_cli
from hub.db import utcnow
from hub.demo.planning import CARDIOLOGY, GROUP_REHABILITATION, OFFICINE_PROGRAM
from hub.demo.territory import CPTS_NAME, find_demo_cpts, load_demo
from hub.identifiers import check_ins_matricule, check_rpps
from hub.models import (
    Appointment,
    AppointmentState,
    EligibilityAssessment,
    EligibilityOutcome,
    FeeEntry,
    Modality,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    ProgramKind,
    Report,
    SessionProgram,
    Slot,
    User,
)
from hub.services.identity import check_matricule_matches_traits
from tests import ZONE
from workflows import statements as shares

# A Thursday: the officine's three Tuesdays before it are in the same calendar year.
DEMO_DAY = dt.datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo(ZONE))


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def in_env(app, monkeypatch, env):
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "ENV": env}))


def test_demo_territory_is_idempotent_and_valid(app, db_session, monkeypatch):
    runner = CliRunner()
    with app.app_context(), time_machine.travel(DEMO_DAY, tick=False):
        in_env(app, monkeypatch, "development")  # as `make run` loads it
        first = runner.invoke(hub_cli, ["demo"])
        assert first.exit_code == 0, first.output
        assert CPTS_NAME in first.output and "TOTP" in first.output
        counts = {m: count(db_session, m) for m in (Patient, Professional, SessionProgram, Slot, Appointment)}
        in_env(app, monkeypatch, "testing")
        second = runner.invoke(hub_cli, ["demo", "--i-know-this-is-not-production"])
        assert second.exit_code == 0, second.output
    assert {m: count(db_session, m) for m in counts} == counts
    assert counts[Patient] >= 200 and counts[SessionProgram] >= 2 and counts[Appointment] >= 1
    for rpps in db_session.scalars(select(Professional.rpps).where(Professional.rpps.is_not(None))):
        check_rpps(rpps)
    for patient in db_session.scalars(select(Patient).where(Patient.ins_matricule.is_not(None))):
        check_matricule_matches_traits(
            check_ins_matricule(patient.ins_matricule), {"sex": patient.sex, "birth_date": patient.birth_date}
        )
    assert load_demo(db_session, zone=app.config["HUB"]["TIMEZONE"]).created is False
    # Each booked patient went through the HAS checklist first: elderly with several conditions, steered to the
    # assisted teleconsultation (seed 003) for the cardiologist; eligible to it for the GP at the officine; eligible
    # to télésoin for the kiné's group session.
    demo = find_demo_cpts(db_session).id
    booked = db_session.scalars(select(Appointment.patient_id).where(Appointment.cpts_id == demo)).all()
    outcomes = db_session.execute(
        select(EligibilityAssessment.patient_id, EligibilityAssessment.modality, EligibilityAssessment.outcome)
        .join(Patient, Patient.id == EligibilityAssessment.patient_id)
        .where(Patient.cpts_id == demo)
    ).all()
    assert sorted(booked) == sorted(patient_id for patient_id, _m, _o in outcomes)
    assert {(m, o) for _p, m, o in outcomes} == {
        (Modality.ASSISTED_TELECONSULTATION, EligibilityOutcome.ASSISTED),
        (Modality.ASSISTED_TELECONSULTATION, EligibilityOutcome.ELIGIBLE),
        (Modality.TELESOIN, EligibilityOutcome.ELIGIBLE),
    }
    _the_group_session_has_four_of_six_seats_taken(db_session, demo)
    # Last Monday's session is done and its report is the cardiologist's to write in « Ma séance ».
    done = db_session.scalars(
        select(Appointment)
        .join(SessionProgram, SessionProgram.id == Appointment.program_id)
        .where(SessionProgram.name == CARDIOLOGY, Appointment.state == AppointmentState.DONE)
    ).all()
    assert len(done) == 1 and done[0].starts_at < utcnow() and done[0].identity_checked_at is not None
    assert db_session.scalar(select(User.login).where(User.professional_id == done[0].performer_id)).startswith(
        "cardio."
    )
    assert db_session.scalar(select(func.count(Report.id)).where(Report.appointment_id == done[0].id)) == 0

    _the_officine_has_its_sessions_and_its_pharmacist_his_tlm(db_session, demo)


def _the_group_session_has_four_of_six_seats_taken(db_session, demo: int) -> None:
    program = db_session.scalars(
        select(SessionProgram).where(SessionProgram.cpts_id == demo, SessionProgram.name == GROUP_REHABILITATION)
    ).one()
    participants = db_session.scalars(select(Appointment).where(Appointment.program_id == program.id)).all()
    assert program.capacity == 6 and len(participants) == 4 and len({a.slot_id for a in participants}) == 1
    assert {(a.telesoin_act, a.place_kind) for a in participants} == {("reeducation_respiratoire", PlaceKind.HOME)}


def _the_officine_has_its_sessions_and_its_pharmacist_his_tlm(db_session, demo: int) -> None:
    """The three Tuesdays before DEMO_DAY are done at the Manzac-sur-Vern officine with its pharmacist, who has
    passed the 5th assistance of the year (their TLM accrued by the completions); next Tuesday is booked."""
    program = db_session.scalars(
        select(SessionProgram).where(SessionProgram.cpts_id == demo, SessionProgram.name == OFFICINE_PROGRAM)
    ).one()
    assert program.kind is ProgramKind.PHARMACY_TELECONSULTATION
    sessions = db_session.scalars(
        select(Appointment).where(Appointment.program_id == program.id).order_by(Appointment.starts_at)
    ).all()
    pharmacist = sessions[0].accompanying
    assert pharmacist.profession is Profession.PHARMACIST and program.organisation_id in {
        o.id for o in pharmacist.organisations
    }
    assert {(a.accompanying_id, a.place_kind) for a in sessions} == {(pharmacist.id, PlaceKind.PHARMACY)}
    assert [a.state for a in sessions] == [AppointmentState.DONE] * 9 + [
        AppointmentState.CONFIRMED,
        AppointmentState.PROPOSED,
        AppointmentState.PROPOSED,
    ]
    tlm = db_session.execute(
        select(FeeEntry.amount, FeeEntry.prescriber_rpps).where(
            FeeEntry.professional_id == pharmacist.id, FeeEntry.code == "TLM"
        )
    ).all()
    assert len(tlm) == 9 and {rpps for _amount, rpps in tlm} == {program.performer.rpps}
    assistance = shares.pharmacy_assistance(db_session, pharmacist, now=DEMO_DAY, zone=ZONE)
    assert (assistance.fees.paid, assistance.fees.until_next_block) == (Decimal("25.00"), 1)
    assert (assistance.sessions.done_count, assistance.sessions.upcoming_count) == (9, 3)


@pytest.mark.parametrize("env", ["production", "testing"])
def test_demo_refuses_outside_development_unless_told(app, db_session, monkeypatch, env):
    """Its accounts share a public password: `flask hub demo` on a hub in service would open it to anyone."""
    in_env(app, monkeypatch, env)
    users = count(db_session, User)
    result = app.test_cli_runner().invoke(args=["hub", "demo"])
    assert result.exit_code != 0
    assert "Refusé" in result.output and "HUB_ENV=development" in result.output
    assert count(db_session, User) == users
    assert find_demo_cpts(db_session) is None
