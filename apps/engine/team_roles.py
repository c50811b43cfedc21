"""Team roles as object permissions: an authentication backend that authenticates no one.

A member holds, on the objects of their team (its workflows and everything under
them), the permissions of their role in `apps.engine.permissions.ROLE_PERMISSIONS`
— the same sets the "Braid viewer/operator/owner" groups hold globally. So
`user.has_perm("engine.cancel_execution", execution)` is true for an operator of
the execution's team, and the admin and the API give the same answer.

Without an object this backend grants nothing: a team role never gives rights
over other teams' objects (global rights come from the groups, as before).
"""

from django.contrib.auth.backends import BaseBackend

from apps.engine.permissions import ROLE_PERMISSIONS
from apps.teams import access


class TeamRoleBackend(BaseBackend):
    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None):
        if obj is None or not (user_obj.is_active and user_obj.is_authenticated):
            return set()
        role = access.memberships(user_obj).get(access.team_id_of(obj))
        return set(ROLE_PERMISSIONS[role]) if role else set()

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj, obj)
