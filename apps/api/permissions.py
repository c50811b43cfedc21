"""Token scopes and staff-only endpoints. Team roles are asked through apps.teams.access."""

from rest_framework import permissions

from apps.api.models import ApiToken, Scope

SAFE = ("GET", "HEAD", "OPTIONS")


def needed_scope(request, view) -> str:
    """A view's `scopes` maps methods to scopes; reads need `read`, the rest `admin`."""
    scopes = getattr(view, "scopes", {})
    return scopes.get(request.method) or (Scope.READ if request.method in SAFE
                                         else Scope.ADMIN)


class TokenScope(permissions.BasePermission):
    """A token request needs the scope of the method; a session has every scope."""

    message = "this token lacks the scope this request needs"

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        scope = needed_scope(request, view)
        self.message = f"this token lacks the `{scope}` scope"
        return token.allows(scope)


class IsStaff(permissions.BasePermission):
    message = "staff only"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_active and request.user.is_staff)


class MayPauseQueues(permissions.BasePermission):
    """Queues belong to no team: pausing needs the global permission (operators' group)."""

    message = "pausing queues needs the engine.pause_queue permission"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_active
                    and request.user.has_perm("engine.pause_queue"))
