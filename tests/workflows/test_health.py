"""Canary health verdicts (no database)."""

from __future__ import annotations

import pytest

from apps.workflows.health import HOLD, PROMOTE, ROLLBACK, Figures, judge, p95, thresholds

LIMITS = thresholds({"min_samples": 10, "min_executions": 20, "min_step_s": 60})
HEALTHY_STABLE = Figures(finished=200, failed=2, p95_ms=300)


def verdict(candidate, stable=HEALTHY_STABLE, step_finished=30, age=120):
    return judge(candidate, stable, LIMITS, step_finished=step_finished, step_age_s=age)


def test_a_candidate_failing_30_percent_is_rolled_back_with_its_figures():
    result = verdict(Figures(finished=40, failed=12, p95_ms=310))

    assert result.decision == ROLLBACK
    assert "30.0%" in result.reason
    assert result.figures["candidate"]["failure_rate"] == 0.3
    assert result.figures["stable"]["failure_rate"] == 0.01


def test_a_failure_rate_above_stable_plus_the_margin_rolls_back():
    result = verdict(Figures(finished=100, failed=15, p95_ms=300))  # 15% > 1% + 10%

    assert result.decision == ROLLBACK
    assert "margin" in result.reason


def test_a_p95_worse_than_stable_by_the_factor_rolls_back():
    result = verdict(Figures(finished=100, failed=0, p95_ms=700))

    assert result.decision == ROLLBACK
    assert "p95" in result.reason


def test_tiny_durations_do_not_trip_the_latency_factor():
    result = verdict(Figures(finished=100, failed=0, p95_ms=9),
                     stable=Figures(finished=100, failed=0, p95_ms=3))

    assert result.decision == PROMOTE


def test_too_few_samples_hold_even_when_failing():
    assert verdict(Figures(finished=3, failed=3), step_finished=3).decision == HOLD


def test_a_healthy_step_promotes_only_after_enough_executions_and_time():
    healthy = Figures(finished=40, failed=0, p95_ms=290)

    assert verdict(healthy, step_finished=19).decision == HOLD
    assert verdict(healthy, age=59).decision == HOLD
    assert verdict(healthy).decision == PROMOTE


def test_thresholds_refuse_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown threshold 'max_fail'"):
        thresholds({"max_fail": 1})
    with pytest.raises(ValueError, match="must be a number"):
        thresholds({"p95_factor": "2"})


def test_p95_is_the_nearest_rank():
    assert p95([]) is None
    assert p95(list(range(1, 101))) == 95
    assert p95([7]) == 7
