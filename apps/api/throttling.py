"""Throttling per token and per user (rates in settings REST_FRAMEWORK).

Each caller gets a counter that its first request opens for one period of the
rate (a minute for `6000/min`); requests past the rate are refused until the
period ends, which `Retry-After` says. One atomic increment per request:

- DRF's own `SimpleRateThrottle` keeps a log of every request's time in the
  window and reads and rewrites all of it per request (12,000 entries at the
  user rate's default), and two concurrent requests can both pass on one count;
- with Redis (production) the counter is one MULTI/EXEC round trip, shared by
  every web process; on the embedded default it is the process's local cache.
"""

from __future__ import annotations

import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from apps.api.models import ApiToken

PREFIX = "braid:throttle:"


@lru_cache(maxsize=1)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def hit(key: str, period_s: int) -> tuple[int, float]:
    """Count one request against `key`: (requests in its current period, seconds left)."""
    if settings.REDIS_URL:
        name = PREFIX + key
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=True)
        pipe.set(name, 0, ex=period_s, nx=True)  # the first request opens the period
        pipe.incr(name)  # keeps the key's expiry
        pipe.pttl(name)
        _, count, left_ms = pipe.execute()
        return count, max(left_ms, 0) / 1000
    now = time.time()
    cache.add(PREFIX + key + ":t", now, period_s)
    cache.add(PREFIX + key, 0, period_s)
    try:
        count = cache.incr(PREFIX + key)
    except ValueError:  # the period ended between the two calls: this one opens the next
        cache.set(PREFIX + key, 1, period_s)
        cache.set(PREFIX + key + ":t", now, period_s)
        count = 1
    opened = cache.get(PREFIX + key + ":t", now)
    return count, max(opened + period_s - now, 0.0)


class PeriodThrottle(SimpleRateThrottle):
    """A counter per caller and period (see the module's docstring); subclasses name
    the caller in `get_cache_key`."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        count, self.left_s = hit(key, int(self.duration))
        return count <= self.num_requests

    def wait(self):
        return self.left_s


class PerTokenThrottle(PeriodThrottle):
    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class PerUserThrottle(PeriodThrottle):
    """All of a user's requests together, whatever token or session they come by."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
