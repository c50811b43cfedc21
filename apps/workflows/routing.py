"""Canary routing: which version a new execution runs. Pure Python, no Django.

The start path calls `route` with the workflow's routing row (read in the same
query that finds its current version) and the start request's identifiers.
The decision is a hash of a key, so it is deterministic: the same key lands
on the same version for the whole release (a retried request too), and a key
on the candidate at 5 % stays on it at 25 % (the candidate's share only grows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

STABLE = "stable"
CANDIDATE = "candidate"
PINNED = "pinned"  # started by version id: the release was bypassed

# How the routing key is chosen (Release.routing_key and the definition's copy).
KEY_IDEMPOTENCY = "idempotency_key"  # the request's idempotency key, else the execution id
KEY_EXECUTION = "execution_id"
KEY_EXPRESSION = "expression"  # a CEL expression over the input
KEY_KINDS = (KEY_IDEMPOTENCY, KEY_EXECUTION, KEY_EXPRESSION)


@dataclass(frozen=True)
class Routing:
    stable_id: int
    candidate_id: int | None = None
    percent: float = 0.0  # share of new executions for the candidate, 0 to 100
    key: str = KEY_IDEMPOTENCY
    expression: str = ""


def bucket(salt: str, key: str) -> float:
    """A uniform number in [0, 100) fixed by (salt, key)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def routing_key(routing: Routing, *, execution_id: str, idempotency_key: str | None,
                inputs: dict, evaluate: Callable[[str, dict], object]) -> str | None:
    """The key routing hashes, or None when it cannot be computed (the expression failed)."""
    if routing.key == KEY_EXPRESSION:
        try:
            value = evaluate(routing.expression, {"input": inputs, "nodes": {}})
        except Exception:  # any evaluation failure: route to stable, never refuse a start
            return None
        return f"cel:{value!r}"
    if routing.key == KEY_IDEMPOTENCY and idempotency_key:
        return f"idem:{idempotency_key}"
    return f"exec:{execution_id}"


def route(routing: Routing, *, execution_id: str, idempotency_key: str | None = None,
          inputs: dict | None = None,
          evaluate: Callable[[str, dict], object] | None = None) -> tuple[int, str]:
    """(version id, STABLE or CANDIDATE) for one new execution."""
    if routing.candidate_id is None or routing.percent <= 0:
        return routing.stable_id, STABLE
    if routing.percent >= 100:
        return routing.candidate_id, CANDIDATE
    key = routing_key(routing, execution_id=execution_id, idempotency_key=idempotency_key,
                      inputs=inputs or {}, evaluate=evaluate or _no_evaluator)
    if key is not None and bucket(str(routing.candidate_id), key) < routing.percent:
        return routing.candidate_id, CANDIDATE
    return routing.stable_id, STABLE


def _no_evaluator(source: str, context: dict):
    raise RuntimeError("no expression evaluator given")
