"""What a page may offer on a row, asked of the state machine of its workflow: templates call
`allows(row, "cancel")` and never list the states an action starts from (who may act is the view's
business, through the policies)."""

from hub.models import Appointment, CarePathway, Referral, Report, TeleexpertiseRequest
from scheduling.board import WeekVisit
from workflows import appointments, pathways, referrals, reports, teleexpertise
from workflows.desk import DeskVisit
from workflows.machine import Machine
from workflows.visits import VisitLine

MACHINES: dict[type, Machine] = {
    Appointment: appointments.MACHINE,
    CarePathway: pathways.PATHWAY_MACHINE,
    Referral: referrals.MACHINE,
    Report: reports.MACHINE,
    TeleexpertiseRequest: teleexpertise.MACHINE,
}
# A row that stands for an entity in a list follows the entity's machine: a visit as « Mes visites » lists it, an
# appointment as the planning's week or the coordinator's desk shows it.
_STANDS_FOR: dict[type, type] = {VisitLine: Appointment, WeekVisit: Appointment, DeskVisit: Appointment}


def allows(row, verb: str) -> bool:
    """Whether the workflow lets `verb` start from the row's current state."""
    kind = type(row)
    return MACHINES[_STANDS_FOR.get(kind, kind)].allows(verb, row.state)
