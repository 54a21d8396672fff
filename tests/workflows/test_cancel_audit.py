"""A cancellation whose freed-slot task loses the race for the slot's one open task (the unique index refuses it,
its savepoint rolls back) still commits with its audit row (review finding 2)."""

import pytest
from sqlalchemy import func, select

from hub.models import AuditEvent, FreedSlotReason, FreedSlotTask
from tests.factories import NOW
from tests.workflows.test_waiting import booked_slot, open_tasks, patient, wait
from workflows import appointments, freed_slots

pytestmark = pytest.mark.usefixtures("clock")


def test_a_cancellation_losing_the_race_for_the_slots_task_keeps_its_audit_row(db_session, territory, monkeypatch):
    t = territory
    wait(db_session, t, patient(db_session, t))
    slot, appointment = booked_slot(db_session, t)
    # A concurrent cancellation that freed the slot committed its task after this one looked for it.
    db_session.add(FreedSlotTask(cpts_id=t.cpts.id, slot_id=slot.id, reason=FreedSlotReason.CANCELLATION))
    db_session.commit()
    monkeypatch.setattr(freed_slots, "_open_task", lambda session, slot_id: None)
    start = db_session.scalar(select(func.max(AuditEvent.id))) or 0
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    db_session.commit()
    assert len(open_tasks(db_session)) == 1
    rows = db_session.execute(
        select(AuditEvent.action, AuditEvent.target_id).where(
            AuditEvent.id > start, AuditEvent.action.like("appointment.%")
        )
    ).all()
    assert ("appointment.cancel", str(appointment.id)) in rows
