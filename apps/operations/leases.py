"""Run a periodic job once across all tickers: a conditional UPDATE must touch one row."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.operations.models import JobLease

HOLDER = f"{socket.gethostname()}:{os.getpid()}"


def take(name: str, every_s: float) -> bool:
    """True if this process should run job `name` now (and holds it for `every_s`).

    Losing the race means another ticker runs the job this round; that is the
    point, so False is not an error.
    """
    now = timezone.now()
    until = now + timedelta(seconds=every_s)
    taken = JobLease.objects.filter(name=name, until__lte=now).update(holder=HOLDER, until=until)
    if taken:
        return True
    if JobLease.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            JobLease.objects.create(name=name, holder=HOLDER, until=until)
        return True
    except IntegrityError:  # another ticker created it first
        return False
