"""Whose fees a user sees: a professional their own, the coordination the whole CPTS, nobody another CPTS's.

A refusal is a 404, as if the professional did not exist (no IDOR oracle), and leaves an audit line (S2).
"""

from sqlalchemy import ColumnElement, false
from sqlalchemy.orm import Session

from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.errors import NotFound
from hub.models import FeeEntry, Professional


def can_read_fees_of(user, professional: Professional) -> bool:
    if professional.cpts_id != user.cpts_id:
        return False
    if has_permission(user, Permission.FEES_READ_CPTS):
        return True
    return has_permission(user, Permission.FEES_READ_OWN) and user.professional_id == professional.id


def visible_fees(user) -> ColumnElement[bool]:
    """The WHERE clause of the fee entries a user may list."""
    if has_permission(user, Permission.FEES_READ_CPTS):
        return FeeEntry.cpts_id == user.cpts_id
    if has_permission(user, Permission.FEES_READ_OWN) and user.professional_id is not None:
        return (FeeEntry.cpts_id == user.cpts_id) & (FeeEntry.professional_id == user.professional_id)
    return false()


def fees_professional_for(session: Session, user, professional_id: int, *, action: str = "fees.read") -> Professional:
    """The professional whose fees the user asks for, if allowed (the read is audited), else 404."""
    professional = session.get(Professional, professional_id)
    if professional is None or not can_read_fees_of(user, professional):
        raise NotFound(
            "Professionnel introuvable.", audit_action=action, audit_target=("professionals", professional_id)
        )
    audit.record(session, actor=user, action=action, target=professional)
    return professional
