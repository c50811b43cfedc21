"""What an operator should try, from what `diagnose` found: a pure function.

Drawn from the troubleshooting checklist: timeouts, resource contention, an
exhausted pool, a version that today's code cannot run, a dead worker.
"""

from __future__ import annotations

from collections.abc import Iterable

BY_ERROR_CLASS = {
    "timeout": "A node timed out: raise its timeout_s if the work is legitimately slow, or "
               "check the service it calls.",
    "resource": "A dependency failed or was unreachable (resource error): check the service, "
                "its rate limits and the network; the node retries by its policy.",
    "configuration": "Version conflict: the pinned version needs a function, node type or "
                     "config this deployment no longer has. Deploy code that has it, or "
                     "re-run on a new version.",
    "execution": "The handler raised: read the node's error; fix the data and retry the node, "
                 "or skip it with a supplied output.",
}
BY_REASON = {
    "queue_paused": "Its queue is paused: resume the queue (admin → Queues, or the API).",
    "pool_full": "A resource pool is exhausted: raise the pool's size or find what holds it.",
    "rate_limited": "A rate limit is deferring it: raise the limit if the downstream allows.",
    "global_limit": "The global concurrency limit is full: contention with other executions.",
    "workflow_limit": "Its workflow's concurrency limit is full: contention.",
    "key_limit": "Its key's concurrency limit is full (e.g. one at a time per customer).",
    "lease_expired": "Its worker stopped responding: the reaper re-queues it; check the "
                     "worker host (crash, OOM kill, network).",
    "queued": "It waits behind other work: add workers or hosts if the backlog persists.",
    "no_worker": "No worker has been seen lately: start `braid worker` processes.",
    "abandoned_thread": "A timed-out handler is still running in an abandoned thread: the "
                        "function ignores ctx.cancelled; fix it to stop on cancellation.",
}
STUCK = ("A node runs far longer than usual: a hung handler or a slow dependency. Cancel "
         "the execution, or wait for its timeout to retry it.")
HOT_HOST = "Its worker host is short of CPU or memory: resource contention; add hosts."


def suggest(error_classes: Iterable[str], reason_codes: Iterable[str], stuck: bool,
            hot_host: bool) -> list[str]:
    """Advice in a stable order, each at most once."""
    advice: list[str] = []
    if stuck:
        advice.append(STUCK)
    for code in reason_codes:
        if code in BY_REASON and BY_REASON[code] not in advice:
            advice.append(BY_REASON[code])
    for error_class in error_classes:
        if error_class in BY_ERROR_CLASS and BY_ERROR_CLASS[error_class] not in advice:
            advice.append(BY_ERROR_CLASS[error_class])
    if hot_host:
        advice.append(HOT_HOST)
    return advice
