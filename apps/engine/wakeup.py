"""Wake-ups: a django-q2 task is a nudge to drain, never the record of work.

Wake-ups are coalesced: no more than one per worker sits in the broker, so a
burst of starts costs a few q2 tasks, not one per execution. A lost wake-up
(a Redis restart, a killed cluster) is harmless: the ticker re-sends it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)
_broker = None


def broker():
    global _broker
    if _broker is None:
        from django_q.brokers import get_broker

        _broker = get_broker()
    return _broker


def wake_workers(count: int | None = None) -> int:
    """Enqueue drain tasks so that up to `count` (default: WORKERS) are waiting."""
    from django_q.tasks import async_task

    want = count or settings.BRAID["WORKERS"]
    try:
        missing = want - broker().queue_size()
        for _ in range(missing):
            async_task("apps.engine.tasks.drain", broker=broker(), task_name="braid-drain")
        return max(0, missing)
    except Exception:  # the broker is down: the ticker re-sends once it is back
        log.exception("could not enqueue a wake-up")
        return 0


def wake_on_commit(count: int | None = None) -> None:
    transaction.on_commit(lambda: wake_workers(count))
