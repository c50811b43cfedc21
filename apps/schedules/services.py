"""Schedule services: create, pause, resume, delayed start, fire now, and `fire_due`.

`fire_due` runs on every tick of the engine's ticker (`ticker.TICK_HOOKS`, see
`apps.py`). Each due schedule is decided in its own transaction, with its row
locked (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite takes the one
write lock at BEGIN), and only while it is still enabled and due; so any number
of tickers on any number of hosts can run it. Belt and braces: a due time gets
one ScheduleRun (unique per schedule and due time) and its execution carries the
idempotency key `schedule:<id>:<due time>`, so a due time never starts twice.

Every start goes through `apps.engine.start.start_execution`, like the API,
the admin and the CLI.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.engine.errors import Conflict, InputInvalid, NotFound
from apps.engine.models import TERMINAL_EXECUTION, Execution
from apps.engine.protocol import retrying
from apps.engine.start import StartRequest, check_input, start_execution
from apps.schedules import planning
from apps.schedules.models import (
    CatchUp,
    MaintenanceWindow,
    Overlap,
    RunStatus,
    Schedule,
    ScheduleRun,
)
from apps.workflows import services as workflows
from apps.workflows.errors import BraidError
from apps.workflows.models import WorkflowDefinition

log = logging.getLogger(__name__)
BATCH = 100  # schedules one fire_due call decides; the next tick takes the rest


# --- validation ------------------------------------------------------------------------------

def _problem(where: str, message: str) -> dict:
    return {"where": where, "node": None, "message": message}


def check_schedule(schedule: Schedule) -> None:
    """InputInvalid listing every problem of `schedule` (cron, time zone, input…)."""
    problems = []
    if schedule.cron:
        try:
            planning.normalize_cron(schedule.cron)
        except planning.PlanningError as exc:
            problems.append(_problem("cron", str(exc)))
    elif schedule.run_at is None:
        problems.append(_problem("cron", "give a cron, or run_at for a one-shot schedule"))
    try:
        planning.zone(schedule.timezone)
    except planning.PlanningError as exc:
        problems.append(_problem("timezone", str(exc)))
    if not (0 <= (schedule.priority if schedule.priority is not None else -1) <= 9):
        problems.append(_problem("priority", "priority must be from 0 to 9"))
    if not schedule.queue:
        problems.append(_problem("queue", "a queue name is required"))
    elif schedule.queue not in settings.BRAID_QUEUES:
        problems.append(_problem("queue", f"no queue {schedule.queue!r} (queues: "
                                          f"{', '.join(settings.BRAID_QUEUES)})"))
    if schedule.overlap not in Overlap.values:
        problems.append(_problem("overlap", f"overlap must be one of {Overlap.values}"))
    if schedule.catch_up not in CatchUp.values:
        problems.append(_problem("catch_up", f"catch_up must be one of {CatchUp.values}"))
    if not (1 <= (schedule.max_catch_up or 0) <= 1000):
        problems.append(_problem("max_catch_up", "max_catch_up must be from 1 to 1000"))
    least = int(planning.MIN_GRACE.total_seconds())
    if schedule.grace_s is None or schedule.grace_s < least:
        problems.append(_problem("grace_s", f"grace_s must be at least {least} seconds"))
    if schedule.workflow_id is None:
        problems.append(_problem("workflow", "a workflow is required"))
    else:
        try:
            check_input(workflows.current_version(schedule.workflow.slug), schedule.input)
        except InputInvalid as exc:
            problems.extend([{**p, "where": p.get("where") or "input"} for p in exc.problems]
                            or [_problem("input", exc.message)])
        except NotFound as exc:
            problems.append(_problem("workflow", exc.message))
    if problems:
        raise InputInvalid(f"the schedule has {len(problems)} problem(s)", problems)


def _definition(workflow) -> WorkflowDefinition:
    if isinstance(workflow, WorkflowDefinition):
        return workflow
    definition = WorkflowDefinition.objects.filter(slug=workflow, adhoc=False).first()
    if definition is None:
        raise NotFound(f"no workflow {workflow!r}")
    return definition


def _get(schedule) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    found = Schedule.objects.filter(pk=schedule).first()
    if found is None:
        raise NotFound(f"no schedule {schedule}")
    return found


# --- writes ------------------------------------------------------------------------------------

def create_schedule(workflow, cron: str, *, name: str = "", timezone_name: str = "UTC",
                    input: dict | None = None, priority: int = 5, queue: str = "scheduled",
                    overlap: str = Overlap.SKIP, catch_up: str = CatchUp.NONE,
                    max_catch_up: int = planning.DEFAULT_CAP,
                    grace_s: int = int(planning.DEFAULT_GRACE.total_seconds()),
                    enabled: bool = True, now: datetime | None = None) -> Schedule:
    """A cron schedule of `workflow` (slug or definition); its first run is the first
    due time after now. Raises InputInvalid listing every problem."""
    if not cron:
        raise InputInvalid("a cron schedule needs a cron (use schedule_once for a delayed "
                           "start)", [_problem("cron", "required")])
    definition = _definition(workflow)
    schedule = Schedule(workflow=definition, cron=" ".join(cron.split()),
                        name=name or f"{definition.slug} {cron}", timezone=timezone_name,
                        input={} if input is None else input, priority=priority, queue=queue,
                        overlap=overlap, catch_up=catch_up, max_catch_up=max_catch_up,
                        grace_s=grace_s, enabled=enabled)
    check_schedule(schedule)
    schedule.next_run_at = first_run(schedule, now or timezone.now())
    schedule.save()
    return schedule


def schedule_once(workflow, at: datetime, input: dict | None = None, *, name: str = "",
                  priority: int = 5, queue: str = "scheduled",
                  catch_up: str = CatchUp.LAST) -> Schedule:
    """Delayed start: start `workflow` once at `at` (a one-shot Schedule, fired by the
    same ticker hook, obeying maintenance windows, audited as a ScheduleRun).

    If the ticker was down at `at`, it still starts when it comes back (catch-up
    `last`); with `catch_up="none"` it is recorded as missed instead.
    """
    if at.tzinfo is None:
        raise InputInvalid("at must be time-zone aware", [_problem("run_at", "naive time")])
    definition = _definition(workflow)
    schedule = Schedule(workflow=definition, cron="", run_at=at, next_run_at=at,
                        name=name or f"{definition.slug} once at {at.isoformat()}",
                        input={} if input is None else input, priority=priority, queue=queue,
                        overlap=Overlap.ALLOW, catch_up=catch_up)
    check_schedule(schedule)
    schedule.save()
    return schedule


def first_run(schedule: Schedule, now: datetime) -> datetime | None:
    """When an (re-)enabled schedule should next fire: the first due time after now;
    a one-shot keeps its run_at (fired late by its catch-up policy)."""
    if schedule.one_shot:
        return schedule.run_at
    return planning.next_due(schedule.cron, schedule.timezone, now)


def pause_schedule(schedule) -> Schedule:
    """Stop firing. Queued runs stay queued until it is resumed."""
    schedule = _get(schedule)
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False, updated_at=timezone.now())
    schedule.enabled = False
    return schedule


def resume_schedule(schedule, now: datetime | None = None) -> Schedule:
    """Fire again from the next due time after now.

    Due times that passed while paused are not owed (the pause was deliberate),
    whatever the catch-up policy: a resumed schedule never fires a pile of late
    runs. Catch-up applies to downtime of the ticker, not to pauses.
    """
    schedule = _get(schedule)
    now = now or timezone.now()
    if schedule.one_shot and schedule.runs.exists():
        raise Conflict(f"one-shot schedule {schedule.pk} has already fired")
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if not locked.enabled:
            locked.enabled = True
            locked.next_run_at = first_run(locked, now)
            locked.save(update_fields=["enabled", "next_run_at", "updated_at"])
    return locked


def reschedule(schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Recompute next_run_at after its cron, time zone or run_at changed."""
    schedule.next_run_at = first_run(schedule, now or timezone.now())
    return schedule


def fire_now(schedule, user=None, now: datetime | None = None) -> ScheduleRun:
    """Start the schedule's workflow now, by hand: an operator's override of
    maintenance windows and the overlap policy. next_run_at does not move."""
    now = now or timezone.now()
    schedule = _get(schedule)
    who = getattr(user, "get_username", lambda: "")()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().select_related("workflow").get(
            pk=schedule.pk)
        execution = _start(schedule, now, user=user)
        run = ScheduleRun.objects.create(
            schedule=schedule, due_at=now, status=RunStatus.STARTED, execution=execution,
            started_at=now, reason=f"fired by hand{f' by {who}' if who else ''}")
        _fired(schedule, execution, now)
        schedule.save(update_fields=["last_execution", "last_fired_at", "updated_at"])
    return run


# --- the ticker hook ---------------------------------------------------------------------------

def fire_due(now: datetime | None = None, limit: int = BATCH) -> int:
    """Decide every enabled schedule whose next_run_at has come, and start queued runs
    whose previous execution ended. Returns how many due times were decided."""
    now = now or timezone.now()
    decided = 0
    due = list(Schedule.objects.filter(enabled=True, next_run_at__lte=now)
               .order_by("next_run_at").values_list("id", "next_run_at")[:limit])
    if due:
        windows = load_windows(min(at for _, at in due), now)
        for pk, _ in due:
            try:
                decided += _fire_one(pk, now, windows)
            except Exception:  # one broken schedule must not stop the others
                log.exception("schedule %s: firing failed", pk)
    waiting = list(
        Schedule.objects.filter(enabled=True, runs__status=RunStatus.QUEUED)
        .filter(Q(last_execution__isnull=True)
                | Q(last_execution__status__in=TERMINAL_EXECUTION))
        .order_by().values_list("id", flat=True).distinct()[:limit])
    if waiting:
        windows = load_windows(now, now)
        for pk in waiting:
            try:
                decided += _start_queued(pk, now, windows)
            except Exception:
                log.exception("schedule %s: starting a queued run failed", pk)
    return decided


def load_windows(since: datetime, now: datetime) -> list[planning.Window]:
    """Windows that may cover a due time from `since` on: recurring ones, and one-off
    ones not ended before it."""
    rows = MaintenanceWindow.objects.filter(
        ~Q(cron="") | Q(ends_at__gt=min(since, now), starts_at__lte=now))
    return [w.as_window() for w in rows]


def _locked_due(pk: int, now: datetime) -> Schedule | None:
    return (Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow")
            .filter(pk=pk, enabled=True, next_run_at__lte=now).first())


def _active(execution_id) -> tuple[bool, str]:
    if execution_id is None:
        return False, ""
    status = Execution.objects.filter(pk=execution_id).values_list(
        "status", flat=True).first()
    return (status is not None and status not in TERMINAL_EXECUTION), status or ""


def _window_reason(window: planning.Window) -> str:
    return f"maintenance window '{window.name}'"


def _start(schedule: Schedule, due_at: datetime, user=None) -> Execution:
    return start_execution(StartRequest(
        workflow=schedule.workflow.slug, input=schedule.input, priority=schedule.priority,
        queue=schedule.queue, client_id=f"schedule:{schedule.pk}",
        idempotency_key=f"schedule:{schedule.pk}:{due_at.isoformat()}", user=user))


def _fired(schedule: Schedule, execution: Execution, now: datetime) -> None:
    schedule.last_execution = execution
    schedule.last_fired_at = now


@retrying
def _fire_one(pk: int, now: datetime, windows: list[planning.Window]) -> int:
    with transaction.atomic():
        schedule = _locked_due(pk, now)
        if schedule is None:  # another ticker has it, or it was paused or advanced
            return 0
        grace = timedelta(seconds=schedule.grace_s)
        if schedule.one_shot:
            plan = planning.plan_once(schedule.next_run_at, now, schedule.catch_up, grace)
        else:
            plan = planning.plan_catch_up(schedule.cron, schedule.timezone,
                                          schedule.next_run_at, now, schedule.catch_up,
                                          grace, schedule.max_catch_up)
        seen = set(ScheduleRun.objects.filter(
            schedule=schedule, due_at__in=plan.fire + plan.missed).values_list(
                "due_at", flat=True))
        rows: list[ScheduleRun] = []
        down = f"missed: due while the scheduler was not running (catch-up {schedule.catch_up})"
        for due_at in plan.missed:
            if due_at not in seen:
                rows.append(ScheduleRun(schedule=schedule, due_at=due_at,
                                        status=RunStatus.SKIPPED, reason=down))
        active, status = _active(schedule.last_execution_id)
        queued = schedule.runs.filter(status=RunStatus.QUEUED).count()
        for due_at in plan.fire:
            if due_at in seen:
                continue
            row = ScheduleRun(schedule=schedule, due_at=due_at)
            rows.append(row)
            window = (planning.window_for(windows, due_at, schedule.workflow_id)
                      or planning.window_for(windows, now, schedule.workflow_id))
            if window:
                row.status, row.reason = RunStatus.SKIPPED, _window_reason(window)
                continue
            decision = planning.overlap_decision(schedule.overlap, active, queued)
            previous = schedule.last_execution_id
            if decision == planning.SKIP:
                row.status = RunStatus.SKIPPED
                row.reason = (f"overlap: previous execution {previous} still {status}"
                              if active else f"overlap: {queued} run(s) already queued")
                continue
            if decision == planning.QUEUE:
                queued += 1
                row.status = RunStatus.QUEUED
                row.reason = (f"overlap: queued behind execution {previous} ({status})"
                              if active else "overlap: queued behind earlier queued runs")
                continue
            try:
                execution = _start(schedule, due_at)
            except BraidError as exc:  # e.g. a new version's input_schema refuses the input
                row.status, row.reason = RunStatus.SKIPPED, f"start refused: {exc.message}"
                continue
            row.status, row.execution, row.started_at = RunStatus.STARTED, execution, now
            _fired(schedule, execution, now)
            active, status = execution.status not in TERMINAL_EXECUTION, execution.status
        if plan.more_missed and rows:
            first = min(rows, key=lambda r: r.due_at)
            first.reason = (f"{first.reason}; " if first.reason else "") + (
                f"earlier due times since {schedule.next_run_at.isoformat()} were missed "
                f"too (cap {schedule.max_catch_up})")[:500]
        for row in rows:
            row.reason = row.reason[:500]
        ScheduleRun.objects.bulk_create(rows)
        if schedule.one_shot:  # fired or missed: a one-shot is done
            schedule.enabled, schedule.next_run_at = False, None
        else:
            schedule.next_run_at = plan.next_run_at
        schedule.save(update_fields=["enabled", "next_run_at", "last_execution",
                                     "last_fired_at", "updated_at"])
    return len(rows)


@retrying
def _start_queued(pk: int, now: datetime, windows: list[planning.Window]) -> int:
    """Start the oldest queued run of a schedule whose previous execution ended."""
    with transaction.atomic():
        schedule = (Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("workflow").filter(pk=pk, enabled=True).first())
        if schedule is None or _active(schedule.last_execution_id)[0]:
            return 0
        if planning.window_for(windows, now, schedule.workflow_id):
            return 0  # it waits for the window to close: nothing starts during maintenance
        run = (ScheduleRun.objects.filter(schedule=schedule, status=RunStatus.QUEUED)
               .order_by("due_at").first())
        if run is None:
            return 0
        try:
            execution = _start(schedule, run.due_at)
        except BraidError as exc:
            run.status, run.reason = RunStatus.SKIPPED, f"start refused: {exc.message}"[:500]
            run.save(update_fields=["status", "reason"])
            return 1
        run.status, run.execution, run.started_at = RunStatus.STARTED, execution, now
        run.reason = f"{run.reason}; started when it ended"[:500]
        run.save(update_fields=["status", "execution", "started_at", "reason"])
        _fired(schedule, execution, now)
        schedule.save(update_fields=["last_execution", "last_fired_at", "updated_at"])
    return 1


# --- edits (API) ------------------------------------------------------------------------------

SCHEDULE_FIELDS = ("name", "cron", "timezone", "run_at", "input", "priority", "queue",
                   "overlap", "catch_up", "max_catch_up", "grace_s")
TIMING_FIELDS = {"cron", "timezone", "run_at"}


def update_schedule(schedule, now: datetime | None = None, **changes) -> Schedule:
    """Change a schedule's fields (see SCHEDULE_FIELDS); a new timing moves next_run_at.
    Raises InputInvalid listing every problem (nothing is saved then)."""
    schedule = _get(schedule)
    unknown = sorted(set(changes) - set(SCHEDULE_FIELDS))
    if unknown:
        raise InputInvalid(f"cannot change {', '.join(unknown)}",
                           [_problem(k, "not a changeable field") for k in unknown])
    for key, value in changes.items():
        setattr(schedule, key, " ".join(value.split()) if key == "cron" else value)
    check_schedule(schedule)
    if TIMING_FIELDS & set(changes) and schedule.enabled:
        reschedule(schedule, now)
    schedule.save()
    return schedule


def delete_schedule(schedule) -> None:
    """Delete a schedule and its audit rows; executions it started stay."""
    _get(schedule).delete()


def _check_window(window: MaintenanceWindow) -> None:
    try:
        planning.check_window(window.as_window())
    except planning.PlanningError as exc:
        raise InputInvalid(str(exc), [_problem("window", str(exc))]) from None


WINDOW_FIELDS = ("name", "starts_at", "ends_at", "cron", "timezone", "duration", "workflow",
                 "reason")


def save_window(window: MaintenanceWindow | None = None, **fields) -> MaintenanceWindow:
    """Create (window=None) or change a maintenance window. Raises InputInvalid."""
    window = window or MaintenanceWindow()
    unknown = sorted(set(fields) - set(WINDOW_FIELDS))
    if unknown:
        raise InputInvalid(f"cannot set {', '.join(unknown)}",
                           [_problem(k, "not a window field") for k in unknown])
    for key, value in fields.items():
        setattr(window, key, value)
    if not window.name:
        raise InputInvalid("a window needs a name", [_problem("name", "required")])
    _check_window(window)
    window.save()
    return window


def delete_window(window: MaintenanceWindow) -> None:
    window.delete()
