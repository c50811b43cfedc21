"""Object permissions from team roles (an authentication backend that authenticates no one).

`user.has_perm("engine.change_execution", execution)` is true when the user's
role in the execution's team grants it. Without an object it is true when any
of the user's roles grants it (so the admin shows what they may use somewhere).
"""

from django.contrib.auth.backends import BaseBackend

from apps.teams import access
from apps.teams.roles import ROLE_PERMISSIONS


class TeamRoleBackend(BaseBackend):
    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None):
        if not (user_obj.is_active and user_obj.is_authenticated):
            return set()
        if obj is None:
            roles = set(access.memberships(user_obj).values())
            if access.sees_all(user_obj):
                roles.add("owner")
            return set().union(*(ROLE_PERMISSIONS[r] for r in roles)) if roles else set()
        role = access.role_in(user_obj, access.team_id_of(obj))
        return set(ROLE_PERMISSIONS[role]) if role else set()

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj, obj)
