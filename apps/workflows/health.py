"""Canary health: compare candidate and stable figures, decide. Pure Python, no Django.

The judge (apps/engine/rollout_judge.py) gathers `Figures` for both versions
over a sliding window and calls `judge`; the verdict and every figure behind
it go into the release's audit log.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

HOLD = "hold"
PROMOTE = "promote"
ROLLBACK = "rollback"

DEFAULT_THRESHOLDS = {
    # Automatic rollback when, over the window, the candidate's failure rate is
    "max_failure_rate": 0.2,  # above this, or
    "failure_margin": 0.1,  # above stable's rate plus this, or when its
    "p95_factor": 2.0,  # p95 duration is more than this times stable's
    "p95_floor_ms": 100.0,  # (stable's p95 counts as at least this: tiny flows jitter)
    "min_samples": 10,  # finished candidate executions before any rollback verdict
    # Promotion of a step: at least this many finished candidate executions in the
    "min_executions": 20,  # step, and
    "min_step_s": 60.0,  # at least this long in the step, while healthy.
    "window_s": 600.0,  # the sliding window of finished executions judged
}


@dataclass(frozen=True)
class Figures:
    """Finished executions of one version over the window."""

    finished: int = 0
    failed: int = 0
    p95_ms: float | None = None

    @property
    def failure_rate(self) -> float:
        return self.failed / self.finished if self.finished else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "failure_rate": round(self.failure_rate, 4)}


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str
    figures: dict = field(default_factory=dict)


def thresholds(given: dict | None) -> dict:
    """The defaults overlaid with `given`; raise ValueError naming a bad key or value."""
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (given or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise ValueError(f"unknown threshold {key!r} (known: "
                             f"{', '.join(DEFAULT_THRESHOLDS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"threshold {key!r} must be a number >= 0, not {value!r}")
        merged[key] = value
    return merged


def p95(durations_ms: list[float]) -> float | None:
    """The 95th percentile (nearest rank) of `durations_ms`, None when empty."""
    if not durations_ms:
        return None
    ordered = sorted(durations_ms)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def judge(candidate: Figures, stable: Figures, limits: dict, *, step_finished: int,
          step_age_s: float) -> Verdict:
    """Hold, promote or roll back one canary step.

    1. With fewer than `min_samples` finished candidate runs in the window: hold.
    2. Roll back on the first of: failure rate above the absolute threshold;
       above stable's rate plus the margin; p95 worse than stable's by the factor.
    3. Promote when the step has `min_executions` finished candidate runs and
       is `min_step_s` old.
    """
    figures = {"candidate": candidate.as_dict(), "stable": stable.as_dict(),
               "step_finished": step_finished, "step_age_s": round(step_age_s, 1),
               "thresholds": limits}
    if candidate.finished >= limits["min_samples"]:
        rate, base = candidate.failure_rate, stable.failure_rate
        if rate > limits["max_failure_rate"]:
            return Verdict(ROLLBACK, f"candidate failure rate {rate:.1%} is above the "
                           f"threshold {limits['max_failure_rate']:.1%}", figures)
        if stable.finished and rate > base + limits["failure_margin"]:
            return Verdict(ROLLBACK, f"candidate failure rate {rate:.1%} is above stable's "
                           f"{base:.1%} + margin {limits['failure_margin']:.1%}", figures)
        if candidate.p95_ms is not None and stable.p95_ms is not None:
            reference = max(stable.p95_ms, limits["p95_floor_ms"])
            if candidate.p95_ms > limits["p95_factor"] * reference:
                return Verdict(ROLLBACK, f"candidate p95 {candidate.p95_ms:.0f} ms is more "
                               f"than {limits['p95_factor']:g}x stable's "
                               f"{reference:.0f} ms", figures)
    if step_finished >= limits["min_executions"] and step_age_s >= limits["min_step_s"]:
        return Verdict(PROMOTE, f"healthy after {step_finished} candidate executions in "
                       f"{step_age_s:.0f} s", figures)
    return Verdict(HOLD, "not enough evidence yet", figures)
