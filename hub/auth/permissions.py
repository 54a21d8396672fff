from enum import StrEnum

from hub.models import Role


class Permission(StrEnum):
    """What a role may do, as <scope>:<resource>:<action>. Object checks live in policies.py."""

    ACTIVITY_DECLARE = "hub:activity:declare"
    APPOINTMENTS_BOOK = "hub:appointments:book"
    APPOINTMENTS_READ = "hub:appointments:read"
    AUDIT_CHAIN_VERIFY = "hub:audit-chain:verify"
    CONNECTORS_MANAGE = "hub:connectors:manage"
    FEES_READ_CPTS = "hub:fees:read-cpts"
    FEES_READ_OWN = "hub:fees:read-own"
    GP_PROPOSALS_ANSWER = "hub:gp-proposals:answer"
    GP_SEARCHES_MANAGE = "hub:gp-searches:manage"
    INCIDENTS_READ_CPTS = "hub:incidents:read-cpts"
    INDICATORS_READ_CPTS = "hub:indicators:read-cpts"
    ORGANISATIONS_MANAGE = "hub:organisations:manage"
    ORGANISATIONS_READ = "hub:organisations:read"
    OUTBOX_READ = "hub:outbox:read"
    OUTBOX_REQUEUE = "hub:outbox:requeue"
    PATHWAY_TEMPLATES_MANAGE = "hub:pathway-templates:manage"
    PATHWAYS_MANAGE = "hub:pathways:manage"
    PATIENTS_CREATE = "hub:patients:create"
    PATIENTS_READ = "hub:patients:read"
    PATIENTS_WRITE = "hub:patients:write"
    PROFESSIONALS_MANAGE = "hub:professionals:manage"
    PROFESSIONALS_READ = "hub:professionals:read"
    PROGRAMS_MANAGE = "hub:programs:manage"
    REFERRALS_READ = "hub:referrals:read"
    REFERRALS_TRIAGE = "hub:referrals:triage"
    REFERRALS_WRITE = "hub:referrals:write"
    REPORTS_MONITOR = "hub:reports:monitor"
    REPORTS_READ = "hub:reports:read"
    REPORTS_WRITE = "hub:reports:write"
    RESOURCES_MANAGE = "hub:resources:manage"
    TARIFFS_MANAGE = "hub:tariffs:manage"
    TARIFFS_READ = "hub:tariffs:read"
    TELEEXPERTISE_ANSWER = "hub:teleexpertise:answer"
    TELEEXPERTISE_ASSIGN = "hub:teleexpertise:assign"
    TELEEXPERTISE_READ = "hub:teleexpertise:read"
    TELEEXPERTISE_REQUEST = "hub:teleexpertise:request"
    TOKENS_MANAGE_OWN = "hub:tokens:manage-own"
    USERS_MANAGE = "hub:users:manage"
    VISITS_RESPOND = "hub:visits:respond"


_EVERYONE = {
    Permission.ORGANISATIONS_READ,
    Permission.PROFESSIONALS_READ,
    Permission.TARIFFS_READ,
    Permission.TOKENS_MANAGE_OWN,
}
# Pathways and the télésoin eligibility checklist: on the patients one may see (hub.auth.policies).
_CLINICAL = {
    Permission.PATHWAYS_MANAGE,
    Permission.PATIENTS_CREATE,
    Permission.PATIENTS_READ,
    Permission.PATIENTS_WRITE,
}
# Answering a visit and running the session: the object check (hub.auth.policies) says on which appointment.
_CARE = {Permission.APPOINTMENTS_READ, Permission.VISITS_RESPOND}
_PLANNING = {Permission.APPOINTMENTS_BOOK, Permission.PROGRAMS_MANAGE, Permission.RESOURCES_MANAGE}
# Fees: one's own statement (and the activity behind the 20 % share); the coordination sees the whole CPTS.
_OWN_FEES = {Permission.ACTIVITY_DECLARE, Permission.FEES_READ_OWN}
# Referrals: a GP writes theirs, the coordination triages; which referral is the policy's (hub.auth.policies).
_REFERRING = {Permission.REFERRALS_READ, Permission.REFERRALS_WRITE}
_TRIAGE = {Permission.REFERRALS_READ, Permission.REFERRALS_TRIAGE}
# Reports: the performer writes theirs, those who see the patient read them, the coordination follows what is
# late; which report is the policy's (hub.auth.policies).
_REPORTING = {Permission.REPORTS_READ, Permission.REPORTS_WRITE}
_REPORTS_FOLLOW_UP = {Permission.REPORTS_MONITOR, Permission.REPORTS_READ}
# Téléexpertise: professionals ask and answer, the coordination assigns; which request is the policy's.
_TELEEXPERTISE = {Permission.TELEEXPERTISE_ANSWER, Permission.TELEEXPERTISE_READ, Permission.TELEEXPERTISE_REQUEST}
_TELEEXPERTISE_ASSIGNING = {Permission.TELEEXPERTISE_ASSIGN, Permission.TELEEXPERTISE_READ}

# The admin runs the directory and accounts, and the kits and places with the coordination; being non-clinical,
# the admin sees no patient record.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        _EVERYONE
        | {
            Permission.AUDIT_CHAIN_VERIFY,
            Permission.CONNECTORS_MANAGE,
            Permission.ORGANISATIONS_MANAGE,
            Permission.OUTBOX_READ,
            Permission.OUTBOX_REQUEUE,
            Permission.PATHWAY_TEMPLATES_MANAGE,
            Permission.PROFESSIONALS_MANAGE,
            Permission.RESOURCES_MANAGE,
            Permission.TARIFFS_MANAGE,
            Permission.USERS_MANAGE,
        }
    ),
    Role.COORDINATOR: frozenset(
        _EVERYONE
        | _CLINICAL
        | _CARE
        | _PLANNING
        | _TRIAGE
        | _TELEEXPERTISE_ASSIGNING
        | _REPORTS_FOLLOW_UP
        | {Permission.FEES_READ_CPTS, Permission.FEES_READ_OWN}
        | {Permission.INCIDENTS_READ_CPTS, Permission.INDICATORS_READ_CPTS}
        | {Permission.OUTBOX_READ, Permission.OUTBOX_REQUEUE}
        | {Permission.GP_SEARCHES_MANAGE}
    ),
    # Answering a proposal of a patient without a médecin traitant: a GP's (workflows.gp_matching.own_gp).
    Role.PROFESSIONAL: frozenset(
        _EVERYONE
        | _CLINICAL
        | _CARE
        | _OWN_FEES
        | _REFERRING
        | _TELEEXPERTISE
        | _REPORTING
        | {Permission.GP_PROPOSALS_ANSWER}
    ),
}


def permissions_of(user) -> frozenset[Permission]:
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    return permissions_of_roles(user.roles)


def permissions_of_roles(roles) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)


def has_permission(user, permission: Permission) -> bool:
    return permission in permissions_of(user)
