"""Pure schedule planning: cron due times, catch-up, windows, overlap.

No Django here: plain functions of datetimes, tested without a database.
Every datetime that goes in must be time-zone aware; every one that comes out
is in UTC. Cron expressions are the standard five fields (or an `@daily`-style
alias), read by croniter in the schedule's IANA time zone (zoneinfo), so a
`30 2 * * *` in Europe/Paris means 02:30 Paris time all year round.

Daylight saving time, the way Vixie cron does it:
- spring forward: a wall time that does not exist that day (02:30 when clocks
  jump 02:00 → 03:00) fires once, at the first moment after the jump (03:00);
- fall back: a job with *fixed hours* (`30 2 * * *`, `0 1-3 * * *`) fires once,
  at the first of the two 02:30s; a job whose hour field is a wildcard or a
  step (`*/30 * * * *`, `0 * * * *`) is an interval and fires in both passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

CATCH_UP_NONE, CATCH_UP_LAST, CATCH_UP_ALL = "none", "last", "all"
OVERLAP_SKIP, OVERLAP_QUEUE, OVERLAP_ALLOW = "skip", "queue", "allow"
START, SKIP, QUEUE = "start", "skip", "queue"

DEFAULT_GRACE = timedelta(seconds=60)
MIN_GRACE = timedelta(seconds=5)  # less would call a busy tick's due time "missed"
DEFAULT_CAP = 100  # runs fired at once by catch-up `all`; missed times recorded at once
MAX_QUEUED = 100  # due times an `overlap: queue` schedule holds before it skips

_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(2000, 1, 1)


class PlanningError(ValueError):
    """A cron expression or time zone that cannot be used."""


# --- validation -------------------------------------------------------------------------

def normalize_cron(expr: str) -> str:
    """The five-field form of `expr` (aliases expanded); PlanningError if invalid."""
    text = " ".join((expr or "").split())
    text = _ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        raise PlanningError(f"cron {expr!r} must have five fields "
                            "(minute hour day-of-month month day-of-week) or be an @alias")
    if not croniter.is_valid(text):
        raise PlanningError(f"cron {expr!r} is not a valid cron expression")
    try:
        # Eight years from a leap year's start see every date a cron can name (29 February).
        croniter(text, _EPOCH, max_years_between_matches=8).get_next(datetime)
    except CroniterBadDateError:
        raise PlanningError(f"cron {expr!r} never fires: no date matches it "
                            "(such as 30 February or 31 April)") from None
    return text


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; PlanningError if unknown."""
    if not name or name != name.strip():
        raise PlanningError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlanningError(f"unknown time zone {name!r} (use an IANA name such as "
                            "'Europe/Paris' or 'UTC')") from None


def timezone_names() -> list[str]:
    return sorted(available_timezones())


def _aware(moment: datetime, what: str = "moment") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PlanningError(f"{what} must be time-zone aware")
    return moment


# --- due times --------------------------------------------------------------------------

def _fixed_hours(cron: str) -> bool:
    return "*" not in cron.split(" ")[1]


def _repeated_wall_time(moment_utc: datetime, tz: ZoneInfo) -> bool:
    """True when `moment_utc` is the second occurrence of its wall time (fall back)."""
    local = moment_utc.astimezone(tz)
    if not local.fold:
        return False
    naive = local.replace(tzinfo=None)
    return (naive.replace(tzinfo=tz, fold=0).utcoffset()
            != naive.replace(tzinfo=tz, fold=1).utcoffset())


def _keep(cron: str, tz: ZoneInfo, moment_utc: datetime) -> bool:
    return not (_fixed_hours(cron) and _repeated_wall_time(moment_utc, tz))


def next_due(cron: str, tz_name: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, in UTC."""
    cron, tz = normalize_cron(cron), zone(tz_name)
    it = croniter(cron, _aware(after, "after").astimezone(tz))
    while True:
        moment = it.get_next(datetime).astimezone(UTC)
        if moment > after and _keep(cron, tz, moment):
            return moment


def due_times(cron: str, tz_name: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` due times strictly after `after`, in UTC."""
    out: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = next_due(cron, tz_name, moment)
        out.append(moment)
    return out


def latest_due(cron: str, tz_name: str, first: datetime, now: datetime,
               limit: int) -> tuple[list[datetime], bool]:
    """Due times in [first, now], the latest `limit` of them in order, and whether
    earlier ones were left out. Walks back from `now`: bounded by `limit`, however
    long the downtime was (a year of an every-minute cron costs `limit` steps)."""
    cron, tz = normalize_cron(cron), zone(tz_name)
    _aware(first, "first")
    found: list[datetime] = []
    # get_prev is strictly before its start: start a microsecond after `now`.
    it = croniter(cron, (_aware(now, "now") + _TICK).astimezone(tz))
    while True:
        moment = it.get_prev(datetime).astimezone(UTC)
        if moment < first:
            return found[::-1], False
        if not _keep(cron, tz, moment):
            continue
        if len(found) == limit:
            return found[::-1], True
        found.append(moment)


# --- catch-up -----------------------------------------------------------------------------

@dataclass
class Plan:
    """What to do with a schedule whose next_run_at has come."""

    fire: list[datetime] = field(default_factory=list)  # start these (in order)
    missed: list[datetime] = field(default_factory=list)  # record these as skipped
    more_missed: bool = False  # earlier missed due times were left unrecorded
    next_run_at: datetime | None = None  # the first due time after now


def plan_catch_up(cron: str, tz_name: str, next_run_at: datetime, now: datetime,
                  policy: str = CATCH_UP_NONE, grace: timedelta = DEFAULT_GRACE,
                  cap: int = DEFAULT_CAP) -> Plan:
    """Which due times in [next_run_at, now] to fire and which were missed.

    next_run_at is itself a due time even off the cron's grid (an operator may set
    it by hand); after it come the cron's due times up to now.

    A due time is *on time* when it is at most `grace` old: it fires under every
    policy. Older ones were missed (the ticker was down, or a database outage):
    - `none`: fire only an on-time one; record the missed ones as skipped;
    - `last`: fire the latest due time even if late; record the others as skipped;
    - `all`: fire every due time, oldest first, at most `cap` of them (the
      latest `cap`); older ones beyond the cap are dropped.
    Missed due times are listed up to `cap` too (the latest ones); `more_missed`
    tells that earlier due times exist beyond that and are not listed one by one.
    The next run is the first due time after `now`: nothing is left behind.
    """
    if policy not in (CATCH_UP_NONE, CATCH_UP_LAST, CATCH_UP_ALL):
        raise PlanningError(f"unknown catch-up policy {policy!r}")
    cap = max(1, cap)
    plan = Plan(next_run_at=next_due(cron, tz_name, now))
    if next_run_at > now:
        plan.next_run_at = next_run_at
        return plan
    due, more = latest_due(cron, tz_name, next_run_at, now, cap + 1)
    if not more and (not due or due[0] != next_run_at):
        due.insert(0, next_run_at)  # set off the cron's grid (by hand): due all the same
    if len(due) > cap:  # keep the latest `cap`; the older ones only tell there are more
        due, more = due[-cap:], True
    if policy == CATCH_UP_ALL:
        plan.fire, plan.more_missed = due, more
        return plan
    latest = due[-1]
    if policy == CATCH_UP_LAST or now - latest <= grace:
        plan.fire = [latest]
        plan.missed = due[:-1]
    else:
        plan.missed = due
    plan.more_missed = more
    return plan


def plan_once(run_at: datetime, now: datetime, policy: str = CATCH_UP_LAST,
              grace: timedelta = DEFAULT_GRACE) -> Plan:
    """A one-shot (delayed start): fire at `run_at`; late by more than `grace`
    it still fires unless the policy is `none`. There is no next run."""
    if run_at > now:
        return Plan(next_run_at=run_at)
    if policy == CATCH_UP_NONE and now - run_at > grace:
        return Plan(missed=[run_at])
    return Plan(fire=[run_at])


# --- maintenance windows -------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A maintenance window: one-off [starts_at, ends_at), or recurring: opens at each
    due time of `cron` in `tz` and stays open for `duration`."""

    name: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str = ""
    tz: str = "UTC"
    duration: timedelta | None = None
    workflow_id: int | None = None  # None: every schedule
    id: int | None = None

    @property
    def recurring(self) -> bool:
        return bool(self.cron)


def check_window(window: Window) -> None:
    """PlanningError unless `window` is a well-formed one-off or recurring window."""
    if window.recurring:
        normalize_cron(window.cron)
        zone(window.tz)
        if not window.duration or window.duration <= timedelta(0):
            raise PlanningError("a recurring window needs a positive duration")
    else:
        if window.starts_at is None or window.ends_at is None:
            raise PlanningError("a one-off window needs starts_at and ends_at "
                                "(or give a cron and a duration for a recurring one)")
        if window.ends_at <= window.starts_at:
            raise PlanningError("a window must end after it starts")


def in_window(window: Window, moment: datetime) -> bool:
    """Whether `moment` falls inside `window` (start included, end excluded)."""
    _aware(moment)
    if not window.recurring:
        return (window.starts_at is not None and window.ends_at is not None
                and window.starts_at <= moment < window.ends_at)
    cron, tz = normalize_cron(window.cron), zone(window.tz)
    # The latest opening at or before `moment` decides: an earlier one ends earlier.
    opened = croniter(cron, (moment + _TICK).astimezone(tz)).get_prev(datetime)
    return moment < opened.astimezone(UTC) + window.duration


def window_for(windows: Iterable[Window], moment: datetime,
               workflow_id: int | None) -> Window | None:
    """The first window covering `moment` that applies to `workflow_id` (or to all)."""
    for window in windows:
        if window.workflow_id not in (None, workflow_id):
            continue
        if in_window(window, moment):
            return window
    return None


# --- overlap ---------------------------------------------------------------------------------

def overlap_decision(policy: str, previous_active: bool, queued_ahead: int = 0,
                     max_queued: int = MAX_QUEUED) -> str:
    """START, SKIP or QUEUE for a due time, given the schedule's overlap policy,
    whether its previous execution is still active and how many due times already
    wait in its queue.

    - `allow`: always start;
    - `skip`: start unless the previous execution is still active;
    - `queue`: start when nothing is active and nothing waits ahead; otherwise wait
      in line (the ticker starts queued runs one at a time as each execution ends),
      skipping once `max_queued` already wait.
    """
    if policy == OVERLAP_ALLOW:
        return START
    if policy == OVERLAP_SKIP:
        return SKIP if previous_active else START
    if policy == OVERLAP_QUEUE:
        if not previous_active and not queued_ahead:
            return START
        return QUEUE if queued_ahead < max_queued else SKIP
    raise PlanningError(f"unknown overlap policy {policy!r}")
