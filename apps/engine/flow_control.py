"""Flow-control services: write concurrency limits, resource pools and rate limits.

The admin (and the API) call these instead of saving the rows themselves, so a
change always does what follows from it:

1. the row is validated (`full_clean`: a bad value is an `InputInvalid` naming
   the field) and written;
2. after the commit, this process forgets its cached rules (other processes
   re-read theirs within `RULES_TTL_S`);
3. workers are woken: a looser limit admits pending executions, a bigger pool
   releases parked runs, a deleted rate limit frees deferred runs.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.engine import limits, pools, ratelimits
from apps.engine.errors import InputInvalid
from apps.engine.models import ConcurrencyLimit, NodeRun, RateLimit, ResourcePool
from apps.engine.statuses import RunStatus
from apps.engine.wakeup import wake_on_commit


def _validated(row, exclude: tuple[str, ...] = ()) -> None:
    try:
        row.full_clean(exclude=exclude)
    except ValidationError as exc:
        problems = [{"where": field if field != "__all__" else None, "node": None,
                     "message": message}
                    for field, messages in exc.message_dict.items() for message in messages]
        name = row._meta.verbose_name
        raise InputInvalid(f"the {name} has {len(problems)} problem(s)", problems) from None


def _changed(forget) -> None:
    transaction.on_commit(forget)
    wake_on_commit(1)


# --- concurrency limits ----------------------------------------------------------------

def save_concurrency_limit(limit: ConcurrencyLimit) -> ConcurrencyLimit:
    """Create or change a concurrency limit; loosening it admits what waits at once."""
    _validated(limit)
    with transaction.atomic():
        limit.save()
        _changed(limits.forget_rules)
    return limit


def delete_concurrency_limits(limit_ids) -> int:
    """Delete limits by id; executions they held back are admitted by the next claim."""
    with transaction.atomic():
        deleted, _ = ConcurrencyLimit.objects.filter(pk__in=list(limit_ids)).delete()
        _changed(limits.forget_rules)
    return deleted


# --- resource pools ------------------------------------------------------------------------

def save_resource_pool(pool: ResourcePool) -> ResourcePool:
    """Create or resize a pool; runs parked on it go as soon as it has room."""
    _validated(pool)
    with transaction.atomic():
        pool.save()
        pools.release_pools_with_room()
    return pool


def delete_resource_pools(names) -> int:
    """Delete pools by name. A node that names a pool again re-creates it with one slot
    (see `pools.Pools`): its parked runs go as holders finish, as before."""
    with transaction.atomic():
        deleted, _ = ResourcePool.objects.filter(pk__in=list(names)).delete()
        pools.release_pools_with_room()
    return deleted


# --- rate limits -----------------------------------------------------------------------------

def save_rate_limit(limit: RateLimit) -> RateLimit:
    """Create or change a token bucket; its tokens refill from its new rate."""
    _validated(limit)
    with transaction.atomic():
        limit.save()
        _changed(ratelimits.forget_rules)
    return limit


def delete_rate_limits(limit_ids) -> int:
    """Delete buckets by id; runs they deferred become claimable at once."""
    with transaction.atomic():
        doomed = RateLimit.objects.filter(pk__in=list(limit_ids))
        deferred = [f"{ratelimits.DEFERRED_PREFIX}{scope}:{target}"
                    for scope, target in doomed.values_list("scope", "target")]
        deleted, _ = doomed.delete()
        if deferred:
            # READY runs change under a claim's row lock too; this waits for it, and
            # either order leaves a claimable run.
            NodeRun.objects.filter(status=RunStatus.READY, waiting_for__in=deferred).update(
                not_before=None, waiting_for="")
        _changed(ratelimits.forget_rules)
    return deleted
