"""Templates ask the workflows' state machines what a row allows (hub.web.states.allows) instead of listing
the states an action starts from."""

import re
from pathlib import Path

import pytest

from hub.models import Appointment, AppointmentState, Referral, ReferralState
from hub.web.states import MACHINES, allows

TEMPLATES = Path(__file__).resolve().parents[2] / "hub" / "web" / "templates"
STATE_TEST = re.compile(r"\bstate(\.value)?\s*(==|!=|\bin\b)\s*(\(|['\"])")
# Display only, no action behind them: the reason of a refusal, an outbox message's next attempt, the
# deliveries of a signed report.
DISPLAY = {"planning/week.html": 1, "outbox/index.html": 1, "reports/show.html": 1}


def test_no_template_lists_the_states_an_action_starts_from():
    found = {
        str(path.relative_to(TEMPLATES)): len(STATE_TEST.findall(path.read_text(encoding="utf-8")))
        for path in TEMPLATES.rglob("*.html")
    }
    assert {name: count for name, count in found.items() if count} == DISPLAY


@pytest.mark.parametrize(("row", "verb", "allowed"), [
    (Appointment(state=AppointmentState.DECLINED), "reassign", True),
    (Appointment(state=AppointmentState.CONFIRMED), "reassign", False),
    (Appointment(state=AppointmentState.CONFIRMED), "check_in", True),
    (Referral(state=ReferralState.ACCEPTED), "cancel", True),
    (Referral(state=ReferralState.SUBMITTED), "submit", False),
])  # fmt: skip
def test_allows_reads_the_transition_table(row, verb, allowed):
    assert allows(row, verb) is allowed


def test_each_machine_speaks_of_its_rows_states():
    for model, machine in MACHINES.items():
        states = model.__table__.c.state.type.enum_class
        assert all(
            isinstance(s, states) for sources, target in machine.transitions.values() for s in (*sources, target)
        )
