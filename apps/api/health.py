"""Probes for load balancers and orchestrators: no auth, and no details for anonymous.

/health says the process answers (no database). /ready says the database and
the broker answer; 503 otherwise. Staff also get the reason.
"""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


@never_cache
@require_GET
def health(request):
    return JsonResponse({"status": "ok"})


def _problems() -> list[str]:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means not ready
        problems.append(f"database: {exc.__class__.__name__}: {exc}")
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                 socket_connect_timeout=2).ping()
        except Exception as exc:
            problems.append(f"broker: {exc.__class__.__name__}: {exc}")
    return problems


@never_cache
@require_GET
def ready(request):
    problems = _problems()
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
    body = {"status": "unavailable" if problems else "ok"}
    user = getattr(request, "user", None)
    if problems and user is not None and user.is_authenticated and user.is_staff:
        body["problems"] = problems
    return JsonResponse(body, status=503 if problems else 200)
