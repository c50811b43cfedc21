"""Who is on the other end of a WebSocket.

Two ways in, as for HTTP:
- `?ticket=…` (programmatic clients): a single-use ticket from
  `POST /api/v1/ws-tickets/`, redeemed here. No cookie is involved, so no origin
  check is needed.
- otherwise the browser's session cookie (AuthMiddlewareStack), only from an
  Origin in ALLOWED_HOSTS (AllowedHostsOriginValidator), so another site's page
  cannot ride a user's session (cross-site WebSocket hijacking).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from apps.live import tickets


class LiveAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner
        self.by_session = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "ticket" not in query:
            return await self.by_session(scope, receive, send)
        user = await database_sync_to_async(tickets.redeem)(query["ticket"][0])
        scope = dict(scope, user=user or AnonymousUser(), auth="ticket")
        return await self.inner(scope, receive, send)
