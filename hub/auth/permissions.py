from enum import StrEnum

from hub.models import Role


class Permission(StrEnum):
    """What a role may do, as <scope>:<resource>:<action>. Object checks live in policies.py."""

    ORGANISATIONS_MANAGE = "hub:organisations:manage"
    ORGANISATIONS_READ = "hub:organisations:read"
    PATIENTS_CREATE = "hub:patients:create"
    PATIENTS_READ = "hub:patients:read"
    PATIENTS_WRITE = "hub:patients:write"
    PROFESSIONALS_MANAGE = "hub:professionals:manage"
    PROFESSIONALS_READ = "hub:professionals:read"
    TOKENS_MANAGE_OWN = "hub:tokens:manage-own"
    USERS_MANAGE = "hub:users:manage"


_EVERYONE = {Permission.ORGANISATIONS_READ, Permission.PROFESSIONALS_READ, Permission.TOKENS_MANAGE_OWN}
_CLINICAL = {Permission.PATIENTS_CREATE, Permission.PATIENTS_READ, Permission.PATIENTS_WRITE}

# The admin runs the directory and accounts and, being non-clinical, sees no patient record.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        _EVERYONE | {Permission.ORGANISATIONS_MANAGE, Permission.PROFESSIONALS_MANAGE, Permission.USERS_MANAGE}
    ),
    Role.COORDINATOR: frozenset(_EVERYONE | _CLINICAL),
    Role.PROFESSIONAL: frozenset(_EVERYONE | _CLINICAL),
}


def permissions_of(user) -> frozenset[Permission]:
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    granted: set[Permission] = set()
    for role in user.roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)


def has_permission(user, permission: Permission) -> bool:
    return permission in permissions_of(user)
