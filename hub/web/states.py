"""What a page may offer on a row, asked of the state machine of its workflow: templates call
`allows(row, "cancel")` and never list the states an action starts from (who may act is the view's
business, through the policies)."""

from hub.models import Appointment, CarePathway, Referral, Report, TeleexpertiseRequest
from workflows import appointments, pathways, referrals, reports, teleexpertise
from workflows.machine import Machine
from workflows.visits import VisitLine

MACHINES: dict[type, Machine] = {
    Appointment: appointments.MACHINE,
    CarePathway: pathways.PATHWAY_MACHINE,
    Referral: referrals.MACHINE,
    Report: reports.MACHINE,
    TeleexpertiseRequest: teleexpertise.MACHINE,
    VisitLine: appointments.MACHINE,  # a visit as « Mes visites » lists it (a row, not the entity)
}


def allows(row, verb: str) -> bool:
    """Whether the workflow lets `verb` start from the row's current state."""
    return MACHINES[type(row)].allows(verb, row.state)
