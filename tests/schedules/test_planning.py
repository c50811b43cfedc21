"""Pure schedule planning: no database."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.schedules import planning
from apps.schedules.planning import (
    QUEUE,
    SKIP,
    START,
    PlanningError,
    Window,
    due_times,
    in_window,
    next_due,
    overlap_decision,
    plan_catch_up,
    plan_once,
    window_for,
)

PARIS = ZoneInfo("Europe/Paris")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def paris(*args, fold=0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


# --- validation -------------------------------------------------------------------------

@pytest.mark.parametrize("expr", ["* * * * *", "*/5 9-17 * * 1-5", "@daily", "@hourly",
                                  "  0  2 * *   *  "])
def test_valid_crons(expr):
    assert len(planning.normalize_cron(expr).split(" ")) == 5


@pytest.mark.parametrize("expr", ["", "61 * * * *", "* * * *", "0 0 * * * *", "nonsense",
                                  "@sometimes"])
def test_invalid_crons(expr):
    with pytest.raises(PlanningError):
        planning.normalize_cron(expr)


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4 *", "* * 31 2,4,6,9,11 *"])
def test_impossible_cron_dates_never_fire_and_are_refused(expr):
    with pytest.raises(PlanningError, match="never fires: no date matches it"):
        planning.normalize_cron(expr)


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 31 * *", "0 0 30 2 1"])
def test_rare_but_possible_cron_dates_are_accepted(expr):
    # 29 February comes every four years; "30 Feb or a Monday" is any Monday.
    assert planning.normalize_cron(expr) == expr


def test_time_zones():
    assert planning.zone("Europe/Paris").key == "Europe/Paris"
    for bad in ("Mars/Olympus", "", " UTC", "../etc/passwd"):
        with pytest.raises(PlanningError):
            planning.zone(bad)


def test_naive_moments_are_refused():
    with pytest.raises(PlanningError):
        next_due("* * * * *", "UTC", datetime(2025, 1, 1))


# --- due times and DST ------------------------------------------------------------------

def test_next_due_is_strictly_after_and_in_utc():
    assert next_due("* * * * *", "UTC", utc(2025, 1, 1, 12, 0)) == utc(2025, 1, 1, 12, 1)
    assert next_due("* * * * *", "UTC", utc(2025, 1, 1, 11, 59, 59, 1)) == utc(2025, 1, 1, 12)
    moment = next_due("0 9 * * *", "Europe/Paris", utc(2025, 1, 1, 12))
    assert moment == utc(2025, 1, 2, 8) and moment.tzinfo == UTC  # 09:00 CET


def test_daily_wall_time_holds_across_spring_forward():
    """09:00 Paris stays 09:00 Paris: 08:00 UTC in winter, 07:00 UTC in summer."""
    times = due_times("0 9 * * *", "Europe/Paris", paris(2025, 3, 29, 12), 3)
    assert [t.astimezone(PARIS).hour for t in times] == [9, 9, 9]
    assert times == [utc(2025, 3, 30, 7), utc(2025, 3, 31, 7), utc(2025, 4, 1, 7)]
    assert paris(2025, 3, 29, 9).astimezone(UTC) == utc(2025, 3, 29, 8)


def test_a_wall_time_skipped_by_spring_forward_fires_once_right_after_the_jump():
    # 2025-03-30: clocks jump 02:00 → 03:00 in Paris; 02:30 does not exist that day.
    times = due_times("30 2 * * *", "Europe/Paris", paris(2025, 3, 29, 12), 3)
    assert times == [paris(2025, 3, 30, 3, 0), paris(2025, 3, 31, 2, 30),
                     paris(2025, 4, 1, 2, 30)]


def test_fixed_time_fires_once_on_fall_back():
    # 2025-10-26: clocks go back 03:00 → 02:00; 02:30 happens twice. Fire once.
    times = due_times("30 2 * * *", "Europe/Paris", paris(2025, 10, 25, 12), 3)
    assert times == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30),
                     utc(2025, 10, 28, 1, 30)]


def test_interval_fires_in_both_passes_of_the_repeated_hour():
    times = due_times("*/30 * * * *", "Europe/Paris", paris(2025, 10, 26, 1, 45), 6)
    # 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET, 03:30 CET: every 30 min
    assert times == [utc(2025, 10, 26, 0, 0) + timedelta(minutes=30 * i) for i in range(6)]
    assert [t.astimezone(PARIS).strftime("%H:%M %Z") for t in times] == [
        "02:00 CEST", "02:30 CEST", "02:00 CET", "02:30 CET", "03:00 CET", "03:30 CET"]


def test_latest_due_agrees_with_due_times_across_dst():
    for cron in ("*/30 * * * *", "30 2 * * *", "0 * * * *", "15 1-3 * * *"):
        for start in (paris(2025, 3, 29, 20), paris(2025, 10, 25, 20)):
            end = start + timedelta(hours=12)
            forward = [t for t in due_times(cron, "Europe/Paris", start - timedelta(
                microseconds=1), 40) if t <= end]
            backward, more = planning.latest_due(cron, "Europe/Paris", start, end, 100)
            assert backward == forward, cron
            assert not more


# --- catch-up -------------------------------------------------------------------------------

EVERY_MINUTE = "* * * * *"
T0 = utc(2025, 6, 1, 12, 0)  # next_run_at when the ticker went down
NOW = T0 + timedelta(minutes=10, seconds=5)  # back up: 11 due times passed (12:00…12:10)


def test_on_time_fires_under_every_policy():
    for policy in ("none", "last", "all"):
        plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, T0 + timedelta(seconds=0.3), policy)
        assert plan.fire == [T0] and plan.missed == [] and plan.next_run_at == T0 + timedelta(
            minutes=1)


def test_not_due_yet_fires_nothing():
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, T0 - timedelta(seconds=1), "all")
    assert plan.fire == [] and plan.missed == [] and plan.next_run_at == T0


def test_catch_up_none_after_ten_minutes_down():
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "none")
    # 12:10 is 5 s late: within the 60 s grace, so it is on time and fires.
    assert plan.fire == [utc(2025, 6, 1, 12, 10)]
    assert plan.missed == [T0 + timedelta(minutes=i) for i in range(10)]
    assert plan.next_run_at == utc(2025, 6, 1, 12, 11)
    # With no grace, nothing fires: every due time was missed.
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "none", grace=timedelta(0))
    assert plan.fire == [] and len(plan.missed) == 11 and not plan.more_missed


def test_catch_up_none_skips_a_late_daily_run():
    plan = plan_catch_up("0 2 * * *", "UTC", utc(2025, 6, 1, 2), utc(2025, 6, 1, 7), "none")
    assert plan.fire == [] and plan.missed == [utc(2025, 6, 1, 2)]
    assert plan.next_run_at == utc(2025, 6, 2, 2)


def test_catch_up_last_fires_only_the_latest():
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "last", grace=timedelta(0))
    assert plan.fire == [utc(2025, 6, 1, 12, 10)]
    assert len(plan.missed) == 10
    plan = plan_catch_up("0 2 * * *", "UTC", utc(2025, 6, 1, 2), utc(2025, 6, 3, 7), "last")
    assert plan.fire == [utc(2025, 6, 3, 2)] and plan.missed == [utc(2025, 6, 1, 2),
                                                                  utc(2025, 6, 2, 2)]


def test_catch_up_all_fires_every_missed_time_in_order():
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "all")
    assert plan.fire == [T0 + timedelta(minutes=i) for i in range(11)]
    assert plan.missed == [] and not plan.more_missed
    assert plan.next_run_at == utc(2025, 6, 1, 12, 11)


def test_catch_up_all_is_capped_to_the_latest():
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "all", cap=4)
    assert plan.fire == [utc(2025, 6, 1, 12, m) for m in (7, 8, 9, 10)]
    assert plan.more_missed


def test_a_year_down_costs_only_the_cap():
    now = T0 + timedelta(days=365)
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, now, "all", cap=100)
    assert len(plan.fire) == 100 and plan.more_missed and plan.fire[-1] == now
    plan = plan_catch_up(EVERY_MINUTE, "UTC", T0, now, "none", cap=100)
    assert plan.fire == [now] and len(plan.missed) == 99 and plan.more_missed


def test_unknown_policy():
    with pytest.raises(PlanningError):
        plan_catch_up(EVERY_MINUTE, "UTC", T0, NOW, "some")


def test_one_shot():
    at = utc(2025, 6, 1, 12)
    assert plan_once(at, at - timedelta(seconds=1)).fire == []
    assert plan_once(at, at - timedelta(seconds=1)).next_run_at == at
    assert plan_once(at, at + timedelta(hours=3)).fire == [at]  # late: still owed
    late = plan_once(at, at + timedelta(hours=3), policy="none")
    assert late.fire == [] and late.missed == [at]


# --- windows -----------------------------------------------------------------------------

def test_one_off_window_contains_its_start_not_its_end():
    window = Window("db upgrade", starts_at=utc(2025, 6, 1, 1), ends_at=utc(2025, 6, 1, 3))
    assert in_window(window, utc(2025, 6, 1, 1))
    assert in_window(window, utc(2025, 6, 1, 2, 59, 59))
    assert not in_window(window, utc(2025, 6, 1, 3))
    assert not in_window(window, utc(2025, 6, 1, 0, 59))


def test_recurring_window_in_local_time():
    # Every Sunday 01:00–03:00 Paris time.
    window = Window("sunday backups", cron="0 1 * * 0", tz="Europe/Paris",
                    duration=timedelta(hours=2))
    assert in_window(window, paris(2025, 6, 1, 1, 0))  # a Sunday
    assert in_window(window, paris(2025, 6, 1, 2, 59))
    assert not in_window(window, paris(2025, 6, 1, 3, 0))
    assert not in_window(window, paris(2025, 6, 2, 1, 30))  # Monday
    assert not in_window(window, utc(2025, 6, 1, 1, 30))  # 03:30 in Paris


def test_window_for_respects_the_workflow():
    everyone = Window("all", starts_at=utc(2025, 6, 1), ends_at=utc(2025, 6, 2))
    billing = Window("billing only", starts_at=utc(2025, 7, 1), ends_at=utc(2025, 7, 2),
                     workflow_id=7)
    windows = [everyone, billing]
    assert window_for(windows, utc(2025, 6, 1, 12), 3) is everyone
    assert window_for(windows, utc(2025, 7, 1, 12), 7) is billing
    assert window_for(windows, utc(2025, 7, 1, 12), 3) is None


def test_check_window():
    planning.check_window(Window("ok", starts_at=utc(2025, 1, 1), ends_at=utc(2025, 1, 2)))
    planning.check_window(Window("ok", cron="0 1 * * 0", duration=timedelta(hours=1)))
    for bad in (Window("backwards", starts_at=utc(2025, 1, 2), ends_at=utc(2025, 1, 1)),
                Window("open-ended", starts_at=utc(2025, 1, 2)),
                Window("no duration", cron="0 1 * * 0"),
                Window("bad cron", cron="99 * * * *", duration=timedelta(hours=1))):
        with pytest.raises(PlanningError):
            planning.check_window(bad)


# --- overlap ------------------------------------------------------------------------------

def test_overlap_decisions():
    assert overlap_decision("allow", previous_active=True) == START
    assert overlap_decision("skip", previous_active=True) == SKIP
    assert overlap_decision("skip", previous_active=False) == START
    assert overlap_decision("queue", previous_active=True) == QUEUE
    assert overlap_decision("queue", previous_active=False) == START
    assert overlap_decision("queue", previous_active=False, queued_ahead=2) == QUEUE
    assert overlap_decision("queue", previous_active=True, queued_ahead=5, max_queued=5) == SKIP
    with pytest.raises(PlanningError):
        overlap_decision("replace", previous_active=True)


def test_next_run_at_off_the_grid_is_due_itself():
    off = T0 + timedelta(seconds=1)  # set by hand, not a cron time
    plan = plan_catch_up(EVERY_MINUTE, "UTC", off, off + timedelta(seconds=0.2), "none")
    assert plan.fire == [off] and plan.next_run_at == T0 + timedelta(minutes=1)
    plan = plan_catch_up(EVERY_MINUTE, "UTC", off, T0 + timedelta(minutes=2), "all")
    assert plan.fire == [off, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_off_grid_next_run_at_counts_against_the_cap():
    off = T0 + timedelta(seconds=1)
    now = T0 + timedelta(minutes=3)  # due: off, 12:01, 12:02, 12:03
    plan = plan_catch_up(EVERY_MINUTE, "UTC", off, now, "all", cap=3)
    assert plan.fire == [T0 + timedelta(minutes=m) for m in (1, 2, 3)] and plan.more_missed
    plan = plan_catch_up(EVERY_MINUTE, "UTC", off, now, "all", cap=4)
    assert plan.fire == [off] + [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    assert not plan.more_missed
