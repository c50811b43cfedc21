"""WebSocket tickets: `issue` one over authenticated HTTP, `redeem` it once on connect."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.live.models import WsTicket


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue(user) -> tuple[str, WsTicket]:
    """A new ticket for `user` (returned once; only its digest is stored)."""
    now = timezone.now()
    # Tickets live seconds: anything an hour past its expiry is only clutter.
    WsTicket.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    ticket = secrets.token_urlsafe(32)
    row = WsTicket.objects.create(
        digest=_digest(ticket), user=user,
        expires_at=now + timedelta(seconds=settings.BRAID_LIVE["TICKET_TTL_S"]))
    return ticket, row


def redeem(ticket: str):
    """The ticket's user if it is known, unexpired and unused (then it is used), else None."""
    if not ticket or len(ticket) > 200:
        return None
    now = timezone.now()
    digest = _digest(ticket)
    # Exactly one connection can flip used_at: a replayed ticket updates no row.
    won = WsTicket.objects.filter(digest=digest, used_at__isnull=True,
                                  expires_at__gt=now).update(used_at=now)
    if won != 1:
        return None
    row = WsTicket.objects.select_related("user").get(digest=digest)
    return row.user if row.user.is_active else None
