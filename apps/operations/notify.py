"""Alert notifications: signed webhooks and e-mail, retried with back-off.

Opening or resolving an alert queues one Notification row per matching route
in the same transaction. Rows are sent by one background thread of the ticker
process (`deliver_due` starts and nudges it), never by a worker or the
ticker's own loop: a slow or dead receiver costs that thread its time and
nothing else. The thread claims rows with a conditional UPDATE, so several
tickers on several hosts never send one notification twice at the same time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.nodes.netguard import resolve_target
from apps.operations.models import SEVERITY_RANK, Alert, Notification, NotificationRoute, Silence

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
SEND_TIMEOUT_S = 5.0
CLAIM_S = 60.0  # a claimed row is this sender's for this long (then anyone may retry it)


def backoff_s(attempts: int) -> float:
    """10 s, 20 s, 40 s … capped at an hour."""
    return min(3600.0, 10.0 * 2 ** max(0, attempts - 1))


def silenced(alert: Alert, now=None) -> bool:
    now = now or timezone.now()
    return Silence.objects.filter(rule=alert.rule, until__gt=now,
                                  subject_id__in=["", alert.subject_id]).exists()


def routes_for(alert: Alert) -> list[NotificationRoute]:
    rank = SEVERITY_RANK.get(alert.severity, 0)
    return [r for r in NotificationRoute.objects.filter(enabled=True)
            if rank >= SEVERITY_RANK.get(r.min_severity, 0)
            and (not r.rules or alert.rule in r.rules)]


def queue_for(alert: Alert, event: str) -> int:
    """Queue this alert event for every matching route unless silenced; nudge the sender."""
    if silenced(alert):
        return 0
    now = timezone.now()
    rows = [Notification(alert=alert, route=route, event=event, next_at=now)
            for route in routes_for(alert)]
    if rows:
        Notification.objects.bulk_create(rows)
        transaction.on_commit(_wake.set)
    return len(rows)


# --- sending ---------------------------------------------------------------------------

def payload(notification: Notification) -> dict:
    alert = notification.alert
    return {
        "event": notification.event,
        "alert": {
            "id": alert.pk, "rule": alert.rule, "severity": alert.severity,
            "state": alert.state, "title": alert.title, "details": alert.details,
            "subject": {"kind": alert.subject_kind, "id": alert.subject_id},
            "execution": str(alert.execution_id) if alert.execution_id else None,
            "occurrences": alert.occurrences,
            "first_seen": alert.first_seen.isoformat(), "last_seen": alert.last_seen.isoformat(),
        },
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 over `timestamp.body` (the timestamp stops replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send_webhook(route: NotificationRoute, body: bytes) -> None:
    """POST to the route's URL, through the same private-network guard as the http node."""
    target = resolve_target(route.target, settings.BRAID["HTTP_ALLOW"])
    parts = urlsplit(route.target)
    netloc = f"[{target.address}]" if ":" in target.address else target.address
    pinned = urlunsplit((parts.scheme, f"{netloc}:{target.port}", parts.path or "/",
                         parts.query, ""))
    timestamp = str(int(time.time()))
    headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Content-Type": "application/json",
               "User-Agent": "Braid-Alerts/1", "X-Braid-Timestamp": timestamp}
    if route.secret:
        headers["X-Braid-Signature"] = sign(route.secret, timestamp, body)
    with httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False) as client:
        response = client.request("POST", pinned, content=body, headers=headers,
                                  extensions={"sni_hostname": target.host})
    if response.status_code >= 300:
        raise RuntimeError(f"receiver answered HTTP {response.status_code}")


def send_email(route: NotificationRoute, data: dict) -> None:
    alert = data["alert"]
    subject = f"[Braid {alert['severity']}] {data['event']}: {alert['title']}"[:200]
    send_mail(subject, json.dumps(data, indent=2), None, [route.target], fail_silently=False)


def send(notification: Notification) -> None:
    data = payload(notification)
    if notification.route.kind == "webhook":
        send_webhook(notification.route, json.dumps(data, sort_keys=True).encode())
    else:
        send_email(notification.route, data)


def send_due(limit: int = 20) -> int:
    """Send up to `limit` due notifications; returns how many were attempted."""
    now = timezone.now()
    due = list(Notification.objects.filter(state="pending", next_at__lte=now)
               .order_by("next_at").values_list("id", "next_at")[:limit])
    attempted = 0
    for pk, next_at in due:
        # Claim it: only one sender moves next_at from the value we read.
        if not Notification.objects.filter(pk=pk, state="pending", next_at=next_at).update(
                next_at=now + timedelta(seconds=CLAIM_S)):
            continue  # another sender took it
        notification = Notification.objects.select_related("alert", "route").get(pk=pk)
        attempted += 1
        notification.attempts += 1
        try:
            send(notification)
        except Exception as exc:  # any failure of the receiver is retried, never raised
            notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if notification.attempts >= MAX_ATTEMPTS:
                notification.state = "failed"
            else:
                notification.next_at = timezone.now() + timedelta(
                    seconds=backoff_s(notification.attempts))
            log.warning("notification %s to %s failed (attempt %s): %s", pk,
                        notification.route.name, notification.attempts, notification.last_error)
        else:
            notification.state = "sent"
            notification.sent_at = timezone.now()
            notification.last_error = ""
        notification.save(update_fields=["state", "attempts", "next_at", "last_error",
                                         "sent_at"])
    return attempted


# --- the sender thread -----------------------------------------------------------------

_wake = threading.Event()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _sender_loop() -> None:
    failing = False
    while True:
        _wake.wait(timeout=5.0)
        _wake.clear()
        try:
            close_old_connections()
            while send_due() > 0:
                pass
            failing = False
        except Exception as exc:  # the database may be away for a moment: try again later
            if not failing:  # once per outage, not every 5 s
                log.warning("notification sender cannot reach the database (%s); "
                            "retrying every 5 s", exc)
            failing = True
        finally:
            try:
                close_old_connections()
            except Exception:  # noqa: S110 - the same outage; the next round reports it
                pass


def deliver_due() -> None:
    """Ticker hook: make sure the sender thread runs (it wakes itself every 5 s)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_sender_loop, name="braid-notify", daemon=True)
            _thread.start()
