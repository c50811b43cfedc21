"""Resource pools: a node holds `slots` of its pool while it runs.

A claim locks the pools its candidates need (by name, after their executions and
before rate buckets), counts the slots held by RUNNING runs, and leases a run
only if its slots fit. A run that does not fit parks as WAITING on `pool:<name>`
(it holds no worker and leaves the claim query); a finishing holder puts parked
runs back to READY, highest priority first, and the ticker re-checks pools whose
size an operator raised.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import Sum

from apps.engine.models import NodeRun, ResourcePool
from apps.engine.wakeup import wake_on_commit

PREFIX = "pool:"


class Pools:
    """The locked pools of one claim and the slots held in each."""

    def __init__(self, names: set[str]):
        self.size: dict[str, int] = {}
        self.held: Counter = Counter()
        if not names:
            return
        # A pool first named by a workflow starts with one slot; operators resize it.
        ResourcePool.objects.bulk_create([ResourcePool(name=n) for n in names],
                                         ignore_conflicts=True)
        for pool in ResourcePool.objects.select_for_update().filter(
                name__in=sorted(names)).order_by("name"):
            self.size[pool.name] = pool.size
        rows = (NodeRun.objects.filter(status="running", pool__in=names).values("pool")
                .annotate(n=Sum("pool_slots")))
        self.held.update({row["pool"]: row["n"] for row in rows})

    def fits(self, run: NodeRun) -> bool:
        return self.held[run.pool] + run.pool_slots <= self.size.get(run.pool, 0)

    def take(self, run: NodeRun) -> None:
        self.held[run.pool] += run.pool_slots

    def give_back(self, run: NodeRun) -> None:
        self.held[run.pool] -= run.pool_slots


def release_parked(freed: Counter) -> int:
    """Put runs parked on pools with freed slots back to READY (priority, then age)."""
    released = 0
    for pool, slots in freed.items():
        ids = list(NodeRun.objects.filter(status="waiting", waiting_for=PREFIX + pool)
                   .order_by("-priority", "id").values_list("id", flat=True)[:max(1, slots)])
        if ids:
            # Parked runs change only here and under their execution's lock (cancel);
            # the status condition makes both orders safe. No event: nothing ran.
            released += NodeRun.objects.filter(id__in=ids, status="waiting").update(
                status="ready", waiting_for="")
    if released:
        wake_on_commit(1)
    return released


def release_pools_with_room() -> int:
    """Ticker step: parked runs whose pool has room now (a resize, a missed release)."""
    parked = (NodeRun.objects.filter(status="waiting", waiting_for__startswith=PREFIX)
              .values_list("waiting_for", flat=True).distinct())
    names = {w[len(PREFIX):] for w in parked}
    if not names:
        return 0
    sizes = dict(ResourcePool.objects.filter(name__in=names).values_list("name", "size"))
    held = Counter({row["pool"]: row["n"] for row in NodeRun.objects.filter(
        status="running", pool__in=names).values("pool").annotate(n=Sum("pool_slots"))})
    room = Counter({n: sizes.get(n, 1) - held[n] for n in names if sizes.get(n, 1) > held[n]})
    return release_parked(room) if room else 0
