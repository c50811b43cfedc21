"""Statuses of executions and node runs: the one definition (pure, no Django).

Models, the protocol, the admin, the CLI and (soon) the API all read them from
here. The members are `str`s, so they compare, hash and serialise as their
values (`RunStatus.READY == "ready"`, `json.dumps` writes `"ready"`).
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


E, R = ExecutionStatus, RunStatus


def _values(*statuses: StrEnum) -> frozenset[str]:
    # Plain str values: the hot path tests statuses read from the database
    # against these sets, and plain strings compare fastest.
    return frozenset(s.value for s in statuses)


# An execution in one of these never moves again.
TERMINAL_EXECUTION = _values(E.SUCCEEDED, E.FAILED, E.CANCELLED, E.COMPENSATED, E.SKIPPED)
# Unfinished: it holds a concurrency-limit slot once admitted.
ACTIVE_EXECUTION = _values(*E) - TERMINAL_EXECUTION
# Unfinished and not compensating: a deadline still applies to it.
DEADLINE_EXECUTION = _values(E.PENDING, E.RUNNING, E.WAITING)
# How a finished execution reads to someone who started it (CLI exit codes, reports).
SUCCESSFUL_EXECUTION = _values(E.SUCCEEDED, E.SKIPPED)
UNSUCCESSFUL_EXECUTION = _values(E.FAILED, E.CANCELLED, E.COMPENSATED)
# Ended in failure, for failure rates and health: cancelled says nothing about health.
FAILED_EXECUTION = _values(E.FAILED, E.COMPENSATED)

TERMINAL_RUN = _values(R.SUCCEEDED, R.FAILED, R.SKIPPED, R.CANCELLED)
ACTIVE_RUN = _values(*R) - TERMINAL_RUN


def choices(statuses: type[StrEnum]) -> list[tuple[str, str]]:
    """Model field choices, labelled as Django's TextChoices would label them."""
    return [(s.value, s.name.replace("_", " ").title()) for s in statuses]
