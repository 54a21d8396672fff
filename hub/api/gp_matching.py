"""/api/v1/patients-without-gp: the coordination's list of patients without a médecin traitant, proposals to GPs
and their answers; /api/v1/me/gp-capacity: how many new patients a GP takes."""

from flask_login import current_user

from hub.api import blueprint, created, load_json
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import access, needs_account
from hub.http.request import db, territory_zone
from hub.models import Professional
from hub.schemas.gp_matching import (
    CapacityIn,
    CapacityOut,
    GpProposalOut,
    GpSearchDetailOut,
    GpSearchIn,
    GpSearchListOut,
    GpSearchWithdrawIn,
    ProposeIn,
    RefuseIn,
)
from workflows import gp_matching


def _today():
    return gp_matching.today_in(territory_zone(), utcnow())


def _detail(search):
    row = (search, gp_matching.fragility(search, _today()))
    matching = gp_matching.matching_gps(db(), search)
    return GpSearchDetailOut().dump({"purpose": gp_matching.PURPOSE, "entry": row, "matching_gps": matching})


@blueprint.get("/patients-without-gp")
@access(Permission.GP_SEARCHES_MANAGE)
def list_gp_searches():
    rows = gp_matching.waiting_list(db(), current_user, today=_today())
    counts = {p.value: n for p, n in gp_matching.counts_by_priority(rows).items()}
    return GpSearchListOut().dump({"purpose": gp_matching.PURPOSE, "counts": counts, "items": rows})


@blueprint.post("/patients-without-gp")
@access(Permission.GP_SEARCHES_MANAGE)
def create_gp_search():
    data = load_json(GpSearchIn())
    patient = patient_for(db(), current_user, data["patient_id"])
    search = gp_matching.enter(db(), current_user, patient, data, now=utcnow())
    return created(_detail(search), "api.get_gp_search", search_id=search.id)


@blueprint.get("/patients-without-gp/<int:search_id>")
@access(Permission.GP_SEARCHES_MANAGE)
def get_gp_search(search_id: int):
    return _detail(gp_matching.search_for(db(), current_user, search_id))


@blueprint.post("/patients-without-gp/<int:search_id>/propose")
@access(Permission.GP_SEARCHES_MANAGE)
def propose_gp(search_id: int):
    search = gp_matching.search_for(db(), current_user, search_id, action="gp_search.propose")
    data = load_json(ProposeIn())
    proposal = gp_matching.propose(db(), current_user, search, db().get(Professional, data["gp_id"]), now=utcnow())
    return GpProposalOut().dump(proposal), 201


@blueprint.post("/patients-without-gp/<int:search_id>/withdraw")
@access(Permission.GP_SEARCHES_MANAGE)
def withdraw_gp_search(search_id: int):
    search = gp_matching.search_for(db(), current_user, search_id, action="gp_search.close")
    data = load_json(GpSearchWithdrawIn())
    gp_matching.close(db(), current_user, search, outcome=data["outcome"], reason=data["reason"], now=utcnow())
    return _detail(search)


@blueprint.post("/patients-without-gp/proposals/<int:proposal_id>/accept")
@access(Permission.GP_PROPOSALS_ANSWER)
def accept_gp_proposal(proposal_id: int):
    proposal = gp_matching.proposal_for(db(), current_user, proposal_id)
    gp_matching.accept(db(), current_user, proposal, now=utcnow())
    return GpProposalOut().dump(proposal)


@blueprint.post("/patients-without-gp/proposals/<int:proposal_id>/refuse")
@access(Permission.GP_PROPOSALS_ANSWER)
def refuse_gp_proposal(proposal_id: int):
    proposal = gp_matching.proposal_for(db(), current_user, proposal_id)
    data = load_json(RefuseIn())
    gp_matching.refuse(db(), current_user, proposal, reason=data["reason"], now=utcnow())
    return GpProposalOut().dump(proposal)


@blueprint.get("/me/gp-capacity")
@access(Permission.GP_PROPOSALS_ANSWER)
@needs_account
def get_gp_capacity():
    return CapacityOut().dump({"capacity": gp_matching.own_gp(current_user).new_patient_capacity})


@blueprint.put("/me/gp-capacity")
@access(Permission.GP_PROPOSALS_ANSWER)
@needs_account
def put_gp_capacity():
    gp = gp_matching.own_gp(current_user)
    data = load_json(CapacityIn())
    gp_matching.set_capacity(db(), current_user, gp, data["capacity"])
    return CapacityOut().dump({"capacity": gp.new_patient_capacity})
