"""Schedules: cron (or one-shot) starts of a workflow, maintenance windows, and the
audit of every due time (ScheduleRun). Rules live in `services.py` and the pure
`planning.py`; these are the rows."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.schedules import planning


def validate_cron(value: str) -> None:
    if value:
        try:
            planning.normalize_cron(value)
        except planning.PlanningError as exc:
            raise ValidationError(str(exc)) from None


def validate_timezone(value: str) -> None:
    try:
        planning.zone(value)
    except planning.PlanningError as exc:
        raise ValidationError(str(exc)) from None


class Overlap(models.TextChoices):
    SKIP = "skip", "skip (while the previous run is active)"
    QUEUE = "queue", "queue (start after the previous run ends)"
    ALLOW = "allow", "allow (run side by side)"


class CatchUp(models.TextChoices):
    NONE = "none", "none (only on-time runs)"
    LAST = "last", "last (the latest missed run)"
    ALL = "all", "all (every missed run, up to the cap)"


class Schedule(models.Model):
    """Starts `workflow` with `input` at each due time of `cron` in `timezone`.

    With an empty cron it is a one-shot (a delayed start): it fires once at
    `run_at` and then disables itself.
    """

    workflow = models.ForeignKey("workflows.WorkflowDefinition", on_delete=models.CASCADE,
                                 related_name="schedules")
    name = models.CharField(max_length=200)
    cron = models.CharField(max_length=120, blank=True, validators=[validate_cron],
                            help_text="Five fields (minute hour day month weekday) or an "
                                      "@alias such as @daily. Empty: a one-shot at run_at.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone],
                                help_text="IANA name, e.g. Europe/Paris. The cron reads "
                                          "wall-clock time there (DST included).")
    run_at = models.DateTimeField(null=True, blank=True,
                                  help_text="One-shot schedules only: when to start.")
    input = models.JSONField(default=dict, blank=True)
    priority = models.SmallIntegerField(default=5, validators=[MinValueValidator(0),
                                                               MaxValueValidator(9)])
    queue = models.CharField(max_length=32, default="scheduled")
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    catch_up = models.CharField(max_length=8, choices=CatchUp.choices, default=CatchUp.NONE)
    max_catch_up = models.PositiveSmallIntegerField(
        default=planning.DEFAULT_CAP, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Most runs catch-up 'all' fires at once after downtime.")
    grace_s = models.PositiveIntegerField(
        default=int(planning.DEFAULT_GRACE.total_seconds()),
        validators=[MinValueValidator(int(planning.MIN_GRACE.total_seconds()))],
        help_text="A due time this many seconds late still counts as on time.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_execution = models.ForeignKey("engine.Execution", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow_id", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(priority__gte=0, priority__lte=9),
                                   name="schedule_priority_0_9"),
            models.CheckConstraint(condition=~Q(cron="") | Q(run_at__isnull=False),
                                   name="schedule_cron_or_run_at"),
        ]
        indexes = [
            # The ticker's query, ten times a second: enabled schedules now due.
            models.Index(fields=["next_run_at"], name="schedule_due",
                         condition=Q(enabled=True)),
        ]

    def __str__(self):
        return self.name

    @property
    def one_shot(self) -> bool:
        return not self.cron


class MaintenanceWindow(models.Model):
    """While a window is open, due schedule runs are recorded as skipped, not started.

    One-off: [starts_at, ends_at). Recurring: opens at each due time of `cron` in
    `timezone` and stays open for `duration`. No workflow: it applies to all.
    """

    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=120, blank=True, validators=[validate_cron],
                            help_text="Recurring windows: when each opens.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    duration = models.DurationField(null=True, blank=True,
                                    help_text="Recurring windows: how long each stays open.")
    workflow = models.ForeignKey("workflows.WorkflowDefinition", null=True, blank=True,
                                 on_delete=models.CASCADE, related_name="maintenance_windows",
                                 help_text="Empty: every schedule.")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "name"]
        indexes = [models.Index(fields=["ends_at"], name="window_ends")]

    def __str__(self):
        return self.name

    def as_window(self) -> planning.Window:
        return planning.Window(name=self.name, starts_at=self.starts_at, ends_at=self.ends_at,
                               cron=self.cron, tz=self.timezone, duration=self.duration,
                               workflow_id=self.workflow_id, id=self.pk)

    def clean(self):
        super().clean()
        try:
            planning.check_window(self.as_window())
        except planning.PlanningError as exc:
            raise ValidationError(str(exc)) from None


class RunStatus(models.TextChoices):
    STARTED = "started"
    SKIPPED = "skipped"
    QUEUED = "queued"


class ScheduleRun(models.Model):
    """What became of one due time of a schedule. Unique per (schedule, due_at):
    however many tickers run, a due time is decided once."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=RunStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    execution = models.ForeignKey("engine.Execution", null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"],
                                    name="schedulerun_unique_due"),
        ]
        indexes = [
            # Queued runs wait for their schedule's previous execution to end.
            models.Index(fields=["schedule", "due_at"], name="schedulerun_queued",
                         condition=Q(status="queued")),
            models.Index(fields=["status", "-due_at"], name="schedulerun_status_due"),
        ]

    def __str__(self):
        return f"{self.schedule_id}@{self.due_at.isoformat()} ({self.status})"
