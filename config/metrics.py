"""/metrics for Prometheus, not for the world: a bearer token or a staff session."""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django_prometheus.exports import ExportToDjangoView


def metrics(request):
    token = settings.BRAID_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(header, f"Bearer {token}")
    if not (by_token or (request.user.is_authenticated and request.user.is_staff)):
        return HttpResponse("metrics need a bearer token (BRAID_METRICS_TOKEN) or a staff "
                            "login\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": "Bearer"})
    from apps.operations.collector import register

    register()  # Braid's own series, read from the database at scrape time
    return ExportToDjangoView(request)
