"""The audit chain for the CPTS's administrator: its state, and a verification run now (itself audited)."""

from flask import current_app, request
from flask_login import current_user

from hub.api import blueprint, json_body
from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db
from hub.schemas.audit_chain import AuditChainOut, VerificationOut
from hub.schemas.base import load
from hub.schemas.scheduling import NoBodyIn
from hub.services import audit_chain


@blueprint.get("/audit/chain")
@access(Permission.AUDIT_CHAIN_VERIFY)
def get_audit_chain():
    state = audit_chain.chain_state(db(), current_app.config["HUB"], cpts_id=current_user.cpts_id)
    return AuditChainOut().dump(state)


@blueprint.post("/audit/chain/verify")
@access(Permission.AUDIT_CHAIN_VERIFY)
def verify_audit_chain():
    """Walk the whole chain and its checkpoints, reading only (the rows waiting are `pending`, for the worker to
    chain; `stalled`, and not `intact`, once one waited past hub.audit.PENDING_STALL); 200 with the breaks found, if
    any; 409 while another verification runs."""
    load(NoBodyIn(), json_body() if request.get_data() else {})
    run = audit_chain.verify_for(db(), current_user, current_app.extensions["hub.sessions"], current_app.config["HUB"])
    return VerificationOut().dump(run)
