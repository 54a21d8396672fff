"""The walk-through of issue 6: a Monday session of three assisted cardiology teleconsultations (one at the
patient's home), run through the workflows from booking to completion, then read on the statements.

The IDELs' statements show TLL, TLL, TLD with the cardiologist's RPPS as prescriber, the cardiologist's
shows three teleconsultations, and the IDELs' 20 % télésoin share is unchanged: accompanying a
teleconsultation is not télésoin.
"""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import select

from hub.models import DeclaredActivity, PlaceKind, Resource, ResourceKind, Slot
from hub.services import statements
from hub.services.statements import Period
from scheduling.slots import generate_slots
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments
from workflows import statements as shares

CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}
NOVEMBER = Period(2026, 11)
AFTER_THE_SESSION = dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def session_day(db_session, territory):
    """The weekly program, with a kit that follows from one slot to the next (one hour apart), the IDELs'
    declared activity and some télésoin of their own, so that their share is not zero."""
    t = territory
    kit = Resource(cpts_id=t.cpts.id, kind=ResourceKind.KIT, name="Mallette ECG connectée")
    db_session.add(kit)
    db_session.flush()
    program = factories.program(db_session, t.cpts, performer=t.cardiologist, slot_interval_minutes=60, kit_id=kit.id)
    generate_slots(db_session, program, now=NOW)
    t.other_idel.served_communes = "24571"
    for nurse in (t.idel, t.other_idel):
        for month in range(1, 12):
            db_session.add(DeclaredActivity(professional_id=nurse.id, year=2026, month=month, amount=Decimal(4000)))
        factories.fee_entry(db_session, nurse, "TMI", dt.date(2026, 9, 14), remote=True, coefficient=Decimal("4.1"))
    db_session.flush()
    slots = db_session.scalars(
        select(Slot)
        .where(
            Slot.program_id == program.id,
            Slot.starts_at >= MONDAY_14H,
            Slot.starts_at < MONDAY_14H + dt.timedelta(hours=4),
        )
        .order_by(Slot.starts_at)
    ).all()
    assert [slot.starts_at.astimezone(MONDAY_14H.tzinfo).hour for slot in slots] == [14, 15, 16]
    return slots


def run(db_session, t, slot, patient, place_kind, idel, idel_user):
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=patient, place_kind=place_kind, accompanying=idel, now=NOW
    )
    appointments.confirm(db_session, idel_user, appointment, now=NOW)
    appointments.check_in(
        db_session,
        idel_user,
        appointment,
        identity_method="CNI",
        patient_location="Maison de santé de Vergt" if place_kind is PlaceKind.DEDICATED_PLACE else "Domicile",
        callback_phone="0612345678",
    )
    before = appointment.starts_at - dt.timedelta(minutes=10)
    appointments.save_checklist(db_session, idel_user, appointment, items=CHECKLIST, now=before)
    appointments.complete(db_session, idel_user, appointment, now=appointment.ends_at)
    return appointment


def idel_shares(db_session, t):
    window = shares.share_window(today=dt.date(2026, 11, 23))
    return shares.remote_shares(db_session, [t.idel.id, t.other_idel.id], window)


def test_a_monday_session_on_the_statements(db_session, territory, session_day, auth):
    t = territory
    first, second, third = session_day
    others = [
        factories.consenting_patient(
            db_session, t.cpts, recorded_by=t.coordinator, commune_insee="24571", phone="0611111111"
        )
        for _ in range(2)
    ]
    shares_before = idel_shares(db_session, t)
    assert all(share.share > 0 for share in shares_before.values())

    run(db_session, t, first, t.patient, PlaceKind.DEDICATED_PLACE, t.idel, t.idel_user)
    run(db_session, t, second, others[0], PlaceKind.DEDICATED_PLACE, t.idel, t.idel_user)
    run(db_session, t, third, others[1], PlaceKind.HOME, t.other_idel, t.other_idel_user)

    idel_lines = [
        line for nurse in (t.idel, t.other_idel) for line in statements.statement(db_session, nurse, NOVEMBER).lines
    ]
    assert [line.code for line in idel_lines] == ["TLL", "TLL", "TLD"]
    assert [line.amount for line in idel_lines] == [Decimal("12.00"), Decimal("12.00"), Decimal("15.00")]
    assert {line.prescriber_rpps for line in idel_lines} == {t.cardiologist.rpps}
    assert all(line.act_on == dt.date(2026, 11, 23) and line.patient_initials for line in idel_lines)

    cardiology = statements.statement(db_session, t.cardiologist, NOVEMBER)
    assert [(line.code, line.amount) for line in cardiology.lines] == [("TC", Decimal("25.00"))] * 3
    assert "éléconsultation" in cardiology.lines[0].label and cardiology.total == Decimal("75.00")

    assert idel_shares(db_session, t) == shares_before, "accompaniments do not count toward the 20 %"

    db_session.commit()
    with time_machine.travel(AFTER_THE_SESSION, tick=False):
        auth.login(t.idel_user)
        page = auth.client.get("/fees/me", query_string={"year": 2026, "month": 11}).get_data(as_text=True)
        assert page.count(">TLL</abbr>") == 2 and t.cardiologist.rpps in page
        exported = auth.client.get(f"/fees/professionals/{t.idel.id}/statement.csv?year=2026&month=11")
        rows = list(csv.reader(io.StringIO(exported.get_data().decode("utf-8-sig")), delimiter=";"))
        assert [(row[1], row[3], row[6]) for row in rows[1:]] == [("TLL", "12,00", t.cardiologist.rpps)] * 2
        before = f"{(shares_before[t.idel.id].share * 100).quantize(Decimal('0.1'))}".replace(".", ",")
        assert f"{before}\u00a0% (plafond 20\u00a0%)" in page
