"""Deny by default: every endpoint states who may call it, or the request is refused.

`@access(Permission.X)` (role check), `@access(AUTHENTICATED)` or `@access(PUBLIC)`. Object checks
(care relation, same CPTS) are made by the view through hub.auth.policies once the object is loaded.
"""

from hub.auth.permissions import Permission

PUBLIC = "public"
AUTHENTICATED = "authenticated"
# Reached between the password and the second factor: the user is not logged in yet.
PENDING_SECOND_FACTOR = "pending-second-factor"


def access(rule: str | Permission):
    def decorate(view):
        view.access_rule = rule
        return view

    return decorate


def access_rule_of(view) -> str | Permission | None:
    return getattr(view, "access_rule", None)
