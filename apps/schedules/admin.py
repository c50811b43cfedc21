"""Admin for schedules, maintenance windows and the audit of each due time.

Schedules and windows are edited here (they are configuration); a schedule's
form is checked by `services.check_schedule` (cron, time zone, input against
the workflow's input_schema) and its next run recomputed by the services.
The actions call the services too (`pause_schedule`, `resume_schedule`,
`fire_now`). ScheduleRuns are read-only: the ticker writes them.

A schedule starts its workflow with nobody watching, so creating or changing
one, and firing it by hand, also needs `may_start_workflow` for its workflow
(besides the schedule permissions): a schedule cannot start what its author
could not.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.engine.admin import execution_link
from apps.engine.permissions import START_EXECUTION, may_start_workflow
from apps.schedules import planning, services
from apps.schedules.models import MaintenanceWindow, Schedule, ScheduleRun
from apps.workflows.admin import BigTableAdmin, NamedDefinitionFilter, ReadOnlyMixin, pretty_json
from apps.workflows.errors import BraidError
from apps.workflows.forms import BoundedJSONField

RUN_COLOURS = {"started": "#198754", "skipped": "#8a939b", "queued": "#6f42c1"}
FIRE_LIMIT = 20  # schedules one "fire now" request starts
RUNS_SHOWN = 20


def run_badge(status: str) -> str:
    return format_html('<span style="background:{};color:#fff;padding:1px 7px;'
                       'border-radius:8px;font-size:0.9em;white-space:nowrap">{}</span>',
                       RUN_COLOURS.get(status, "#6c757d"), status)


class WorkflowFilter(NamedDefinitionFilter):
    field = "workflow_id"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- schedules ----------------------------------------------------------------------------

class ScheduleForm(forms.ModelForm):
    user = None  # set by ScheduleAdmin.get_form: who is saving

    class Meta:
        model = Schedule
        fields = ("workflow", "name", "cron", "timezone", "run_at", "input", "priority",
                  "queue", "enabled", "overlap", "catch_up", "max_catch_up", "grace_s")
        field_classes = {"input": BoundedJSONField}

    def clean_workflow(self):
        workflow = self.cleaned_data.get("workflow")
        if workflow is not None and not may_start_workflow(self.user, workflow):
            raise forms.ValidationError(f"you may not start workflow {workflow.slug!r}, "
                                        "so you may not schedule it")
        return workflow

    def _post_clean(self):
        super()._post_clean()  # builds the instance and runs the model's validators
        if self.errors:
            return
        try:
            services.check_schedule(self.instance)
        except BraidError as exc:
            for problem in exc.problems or [{"where": None, "message": exc.message}]:
                where = (problem.get("where") or "").split("/")[0]
                message = problem["message"]
                if problem.get("where", "").startswith("input/"):
                    message = f"{problem['where']}: {message}"
                self.add_error(where if where in self.fields else None, message)


@admin.register(Schedule)
class ScheduleAdmin(BigTableAdmin):
    form = ScheduleForm
    list_display = ("name", "workflow", "cron_or_once", "timezone", "next_run_at",
                    "last_fired_at", "enabled", "overlap", "catch_up", "last_execution_link")
    list_select_related = ("workflow",)
    list_filter = ("enabled", "overlap", "catch_up", WorkflowFilter)
    search_fields = ("=workflow__slug", "^name")
    search_help_text = "An exact workflow slug, or the start of a schedule's name."
    ordering = ("next_run_at", "id")
    raw_id_fields = ("workflow",)
    actions = ("enable_selected", "disable_selected", "fire_selected")
    fieldsets = (
        (None, {"fields": ("workflow", "name", "enabled")}),
        ("When", {"fields": ("cron", "timezone", "run_at", "upcoming")}),
        ("What", {"fields": ("input", "priority", "queue")}),
        ("Policies", {"fields": ("overlap", "catch_up", "max_catch_up", "grace_s")}),
        ("State", {"fields": ("next_run_at", "last_fired_at", "last_execution_link",
                              "recent_runs", "created_at", "updated_at")}),
    )
    readonly_fields = ("upcoming", "next_run_at", "last_fired_at", "last_execution_link",
                       "recent_runs", "created_at", "updated_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_start_workflow(request.user, obj.workflow))

    def save_model(self, request, obj, form, change):
        moved = {"cron", "timezone", "run_at"} & set(form.changed_data)
        resumed = "enabled" in form.changed_data and obj.enabled
        if obj.enabled and (not change or moved or resumed or obj.next_run_at is None):
            services.reschedule(obj)
        super().save_model(request, obj, form, change)

    @admin.display(description="cron", ordering="cron")
    def cron_or_once(self, obj):
        if obj.cron:
            return obj.cron
        return f"once at {obj.run_at.isoformat(timespec='seconds')}" if obj.run_at else "—"

    @admin.display(description="last execution")
    def last_execution_link(self, obj):
        return execution_link(obj.last_execution_id) if obj.last_execution_id else "—"

    @admin.display(description="next due times")
    def upcoming(self, obj):
        if not obj.pk or not obj.cron:
            return "—"
        try:
            times = planning.due_times(obj.cron, obj.timezone, timezone.now(), 5)
        except planning.PlanningError as exc:
            return str(exc)
        zone = planning.zone(obj.timezone)
        return ", ".join(f"{t.astimezone(zone):%Y-%m-%d %H:%M %Z}" for t in times)

    @admin.display(description=f"the last {RUNS_SHOWN} due times")
    def recent_runs(self, obj):
        if not obj.pk:
            return "—"
        runs = list(obj.runs.order_by("-due_at")[:RUNS_SHOWN])
        if not runs:
            return "—"
        url = reverse("admin:schedules_schedulerun_changelist")
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r.due_at.isoformat(timespec="seconds"), run_badge(r.status),
              execution_link(r.execution_id) if r.execution_id else "—", r.reason)
             for r in runs))
        return format_html('<table><thead><tr><th>due</th><th>status</th><th>execution</th>'
                           '<th>reason</th></tr></thead><tbody>{}</tbody></table>'
                           '<a href="{}?schedule={}">all of them</a>', rows, url, obj.pk)

    # --- actions --------------------------------------------------------------------
    def has_fire_permission(self, request):
        return request.user.has_perm(START_EXECUTION)

    def _startable(self, request, queryset) -> list:
        """The selected schedules whose workflow the user may start; reports the others."""
        allowed = []
        for schedule in queryset.select_related("workflow"):
            if may_start_workflow(request.user, schedule.workflow):
                allowed.append(schedule)
            else:
                self.message_user(request, f"{schedule}: you may not start workflow "
                                  f"{schedule.workflow.slug!r}.", messages.ERROR)
        return allowed

    @admin.action(description="Enable (resume) selected schedules from their next due time",
                  permissions=["change"])
    def enable_selected(self, request, queryset):
        done = 0
        for schedule in self._startable(request, queryset.filter(enabled=False)):
            try:
                services.resume_schedule(schedule)
                done += 1
            except BraidError as exc:
                self.message_user(request, f"{schedule}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Enabled {_plural(done, 'schedule')}; missed due times "
                          "are not fired.", messages.SUCCESS if done else messages.INFO)

    @admin.action(description="Disable (pause) selected schedules", permissions=["change"])
    def disable_selected(self, request, queryset):
        done = 0
        for schedule in self._startable(request, queryset.filter(enabled=True)):
            services.pause_schedule(schedule)
            done += 1
        self.message_user(request, f"Disabled {_plural(done, 'schedule')}.",
                          messages.SUCCESS if done else messages.INFO)

    @admin.action(description="Fire selected schedules now (ignores windows and overlap)",
                  permissions=["fire"])
    def fire_selected(self, request, queryset):
        started = 0
        for schedule in self._startable(request, queryset[:FIRE_LIMIT]):
            try:
                services.fire_now(schedule, user=request.user)
                started += 1
            except BraidError as exc:
                self.message_user(request, f"{schedule}: {exc.message}", messages.ERROR)
        if started:
            self.message_user(request, f"Started {_plural(started, 'execution')}.",
                              messages.SUCCESS)
        if queryset.count() > FIRE_LIMIT:
            self.message_user(request, f"Stopped after {FIRE_LIMIT} schedules.",
                              messages.WARNING)


# --- maintenance windows -------------------------------------------------------------------

@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ("name", "applies_to", "starts_at", "ends_at", "cron", "timezone",
                    "duration", "open_now", "reason")
    list_select_related = ("workflow",)
    list_filter = (WorkflowFilter,)
    search_fields = ("^name",)
    ordering = ("-starts_at", "name")
    raw_id_fields = ("workflow",)
    fieldsets = (
        (None, {"fields": ("name", "workflow", "reason")}),
        ("One-off", {"fields": ("starts_at", "ends_at")}),
        ("Recurring", {"fields": ("cron", "timezone", "duration")}),
    )

    @admin.display(description="applies to")
    def applies_to(self, obj):
        return obj.workflow.slug if obj.workflow_id else "all schedules"

    @admin.display(description="open now", boolean=True)
    def open_now(self, obj):
        try:
            return planning.in_window(obj.as_window(), timezone.now())
        except planning.PlanningError:
            return None


# --- runs ----------------------------------------------------------------------------------

class ScheduleIdFilter(admin.SimpleListFilter):
    """`?schedule=<id>` from a schedule's page; no choices listed."""

    title = "schedule"
    parameter_name = "schedule"

    def lookups(self, request, model_admin):
        return [(self.value(), f"#{self.value()}")] if self.value() else []

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(schedule_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(ScheduleRun)
class ScheduleRunAdmin(ReadOnlyMixin, BigTableAdmin):
    list_display = ("id", "schedule", "due_at", "badge", "execution_short", "reason",
                    "started_at")
    list_select_related = ("schedule",)
    list_filter = ("status", ScheduleIdFilter)
    search_fields = ("=schedule__name",)
    search_help_text = "A schedule's exact name."
    sortable_by = ("due_at",)
    ordering = ("-due_at", "-id")
    fields = ("schedule", "due_at", "badge", "reason", "execution_full", "created_at",
              "started_at", "input_pretty")
    readonly_fields = fields

    @admin.display(description="status")
    def badge(self, obj):
        return run_badge(obj.status)

    @admin.display(description="execution")
    def execution_short(self, obj):
        return execution_link(obj.execution_id) if obj.execution_id else "—"

    @admin.display(description="execution")
    def execution_full(self, obj):
        return (execution_link(obj.execution_id, str(obj.execution_id))
                if obj.execution_id else "—")

    @admin.display(description="schedule's input (now)")
    def input_pretty(self, obj):
        return pretty_json(obj.schedule.input)
