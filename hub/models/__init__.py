"""The hub's records. This package imports nothing but hub.db (and SQLAlchemy)."""

from hub.models.audit import AuditEvent
from hub.models.organisation import ORGANISATION_KIND_LABELS, Organisation, OrganisationKind
from hub.models.patient import (
    CONSENT_KIND_LABELS,
    CONSENT_METHOD_LABELS,
    IDENTITY_DOCUMENT_LABELS,
    IDENTITY_STATUS_LABELS,
    CareTeamMember,
    Consent,
    ConsentKind,
    ConsentMethod,
    IdentityCheck,
    IdentityCheckKind,
    IdentityDocumentType,
    IdentityStatus,
    Patient,
    Sex,
)
from hub.models.professional import (
    CLINICAL_PROFESSIONS,
    PROFESSION_LABELS,
    Profession,
    Professional,
    professional_organisations,
)
from hub.models.user import ROLE_LABELS, ApiToken, LoginAttempt, Role, User, UserRole, UserSession

__all__ = [
    "CLINICAL_PROFESSIONS",
    "CONSENT_KIND_LABELS",
    "CONSENT_METHOD_LABELS",
    "IDENTITY_DOCUMENT_LABELS",
    "IDENTITY_STATUS_LABELS",
    "ORGANISATION_KIND_LABELS",
    "PROFESSION_LABELS",
    "ROLE_LABELS",
    "ApiToken",
    "AuditEvent",
    "CareTeamMember",
    "Consent",
    "ConsentKind",
    "ConsentMethod",
    "IdentityCheck",
    "IdentityCheckKind",
    "IdentityDocumentType",
    "IdentityStatus",
    "LoginAttempt",
    "Organisation",
    "OrganisationKind",
    "Patient",
    "Profession",
    "Professional",
    "Role",
    "Sex",
    "User",
    "UserRole",
    "UserSession",
    "professional_organisations",
]
