"""Throttling per token and per user (rates in settings REST_FRAMEWORK)."""

from rest_framework.throttling import SimpleRateThrottle

from apps.api.models import ApiToken


class PerTokenThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class PerUserThrottle(SimpleRateThrottle):
    """All of a user's requests together, whatever token or session they come by."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
