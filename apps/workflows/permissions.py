"""Who may do what to a workflow's releases: one function per action.

Owners deploy and promote, operators may abort and roll back, viewers read.
Each check asks for a Django permission, globally (groups, direct grants,
superusers: Django's ModelBackend) or on the workflow object
(`user.has_perm(perm, definition)`): team roles plug in as an authentication
backend that grants these permissions per workflow, without touching callers.
`user=None` is the system itself (the health judge, `manage.py braid` on the
server), which is trusted.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

VIEW = "workflows.view_release"
DEPLOY = "workflows.deploy_release"
ROLLBACK = "workflows.rollback_release"


# Global permissions are asked of Django's own backend only: an object-permission
# backend may answer a question without an object with "somewhere", which must
# not let an owner of one team deploy another team's workflow.
_GLOBAL = ModelBackend()


def _allowed(user, perm: str, definition) -> bool:
    if user is None:
        return True
    if not getattr(user, "is_active", False):
        return False
    return _GLOBAL.has_perm(user, perm) or user.has_perm(perm, definition)


def _require(user, perm: str, definition, action: str) -> None:
    if not _allowed(user, perm, definition):
        raise PermissionDenied(f"{getattr(user, 'username', 'anonymous')} may not {action} "
                               f"releases of {definition.slug}")


def check_view(user, definition) -> None:
    _require(user, VIEW, definition, "see")


def check_deploy(user, definition) -> None:
    _require(user, DEPLOY, definition, "deploy")


def check_promote(user, definition) -> None:
    _require(user, DEPLOY, definition, "promote")


def check_abort(user, definition) -> None:
    _require(user, ROLLBACK, definition, "abort")


def check_rollback(user, definition) -> None:
    _require(user, ROLLBACK, definition, "roll back")


def can(user, action: str, definition) -> bool:
    """For pages that show or hide a button: the same checks, as a yes/no."""
    check = {"view": check_view, "deploy": check_deploy, "promote": check_promote,
             "abort": check_abort, "rollback": check_rollback}[action]
    try:
        check(user, definition)
    except PermissionDenied:
        return False
    return True
