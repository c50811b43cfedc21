"""Admin for executions, node runs and events: read-only views plus operator actions.

Nothing here writes a row by hand. The actions call the same services as the
API and the CLI (`start.start_execution`, `control.cancel_execution`) and
report with `message_user`. Lists stay cheap on millions of rows: counts are
capped, filters list few choices and use indexed columns, searches are exact.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from apps.engine import admin_start
from apps.engine.admin_releases import ReleaseAdminMixin
from apps.engine.control import cancel_execution
from apps.engine.diagnosis import why_execution
from apps.engine.errors import Conflict, NotFound
from apps.engine.models import (
    TERMINAL_EXECUTION,
    Execution,
    ExecutionEvent,
    NodeRun,
    NodeRunLog,
)
from apps.engine.permissions import CANCEL_EXECUTION, START_EXECUTION, may_start_workflow
from apps.engine.start import StartRequest, start_execution
from apps.workflows import admin as workflows_admin
from apps.workflows.admin import (
    COUNT_CAP,
    BigTableAdmin,
    NamedDefinitionFilter,
    ReadOnlyMixin,
    json_head,
    limited_formset,
    pretty_json,
    short_json,
)
from apps.workflows.errors import BraidError
from apps.workflows.models import WorkflowDefinition

STATUS_COLOURS = {  # every status of apps.engine.statuses, executions' and runs' alike
    "pending": "#6c757d", "ready": "#6c757d", "running": "#0d6efd", "waiting": "#6f42c1",
    "succeeded": "#198754", "failed": "#dc3545", "cancelled": "#495057",
    "compensating": "#fd7e14", "compensated": "#a35200", "skipped": "#8a939b",
}
EVENT_TYPES = (
    "execution.created", "execution.compensating", "execution.succeeded",
    "execution.failed", "execution.cancelled", "execution.compensated",
    "node.started", "node.succeeded", "node.failed", "node.retrying", "node.waiting",
    "node.skipped", "node.cancelled",
    "compensation.succeeded", "compensation.failed", "compensation.cancelled",
)
EVENTS_SHOWN = 200
RUNS_SHOWN = 200
CANCEL_LIMIT = 1000  # executions one action request cancels; run it again for more
START_LIMIT = 50  # workflows one action request starts


def status_badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#6c757d")
    return format_html('<span style="background:{};color:#fff;padding:1px 7px;'
                       'border-radius:8px;font-size:0.9em;white-space:nowrap">{}</span>',
                       colour, status)


def human_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def execution_link(execution_id, label: str | None = None) -> str:
    url = reverse("admin:engine_execution_change", args=[execution_id])
    return format_html('<a href="{}">{}</a>', url, label or str(execution_id)[:8])


# --- list filters (few choices, no DISTINCT over a big table) -------------------------

class QueueFilter(admin.SimpleListFilter):
    """Queues seen among the latest executions (one bounded read, not a DISTINCT scan)."""

    title = "queue"
    parameter_name = "queue"
    sample = 1000

    def lookups(self, request, model_admin):
        recent = (Execution.objects.order_by("-created_at")
                  .values_list("queue", flat=True)[: self.sample])
        queues = {"default", *recent}
        if self.value():
            queues.add(self.value())
        return [(q, q) for q in sorted(queues)]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class EventTypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(t, t) for t in EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


# --- executions ------------------------------------------------------------------------

class NodeRunColumnsMixin:
    """Columns shared by the node-run inline and the node-run pages."""

    @admin.display(description="status")
    def badge(self, obj):
        return status_badge(obj.status)

    @admin.display(description="duration")
    def duration(self, obj):
        if obj.duration_ms is None:
            return "—"
        return human_duration(timedelta(milliseconds=obj.duration_ms))


class NodeRunInline(NodeRunColumnsMixin, ReadOnlyMixin, admin.TabularInline):
    model = NodeRun
    formset = limited_formset(RUNS_SHOWN)
    verbose_name_plural = f"node runs (the first {RUNS_SHOWN}, in order)"
    fields = ("run_link", "node_id", "attempt", "badge", "compensation", "worker",
              "started_at", "duration", "error")
    readonly_fields = fields
    ordering = ("id",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).defer("output", "wake_output")

    @admin.display(description="run")
    def run_link(self, obj):
        url = reverse("admin:engine_noderun_change", args=[obj.pk])
        return format_html('<a href="{}">#{}</a>', url, obj.pk)


    @admin.display(description="error")
    def error(self, obj):
        if not obj.error_class:
            return ""
        return f"{obj.error_class}: {Truncator(obj.error_message).chars(120)}"


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyMixin, BigTableAdmin):
    list_display = ("short_id", "workflow", "version_number", "badge", "progress",
                    "priority", "created_at", "duration")
    list_display_links = ("short_id",)
    list_select_related = ("definition", "version")
    list_filter = ("status", QueueFilter, NamedDefinitionFilter)
    search_fields = ("=id",)  # shows the box; get_search_results does the work
    search_help_text = ("An execution id, client id or idempotency key, or a workflow "
                        "slug (all exact).")
    sortable_by = ("created_at",)
    ordering = ("-created_at",)
    raw_id_fields = ("definition", "version", "created_by")
    actions = ("cancel_selected",)
    inlines = (NodeRunInline,)
    list_defer = ("input", "output", "error", "current_nodes")
    fieldsets = (
        (None, {"fields": ("id", "workflow_link", "version_link", "badge", "progress",
                           "current_nodes", "why_not_moving", "node_runs_link")}),
        ("Request", {"fields": ("priority", "queue", "client_id", "idempotency_key",
                                "created_by", "deadline")}),
        ("Times", {"fields": ("created_at", "started_at", "finished_at", "duration")}),
        ("Data", {"fields": ("input_pretty", "output_pretty", "error_pretty")}),
        ("Events", {"fields": ("events_table",)}),
    )
    readonly_fields = ("id", "workflow_link", "version_link", "badge", "progress",
                       "current_nodes", "why_not_moving", "node_runs_link", "priority", "queue", "client_id",
                       "idempotency_key", "created_by", "deadline", "created_at",
                       "started_at", "finished_at", "duration", "input_pretty",
                       "output_pretty", "error_pretty", "events_table")

    def get_queryset(self, request):
        # Not the version's graph: a big workflow's JSON would be decoded for every row.
        return (super().get_queryset(request).select_related("definition", "version")
                .defer("version__graph"))

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, each served by an index (no LIKE '%…%' scans)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        execution_id = as_uuid(term)
        if execution_id is not None:
            return queryset.filter(pk=execution_id), False
        matches = queryset.filter(Q(client_id=term) | Q(idempotency_key=term))
        definition_id = (WorkflowDefinition.objects.filter(slug=term)
                         .values_list("pk", flat=True).first())
        if definition_id is not None and not matches.exists():
            return queryset.filter(definition_id=definition_id), False
        return matches, False

    # --- columns -----------------------------------------------------------------
    @admin.display(description="execution")
    def short_id(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description="workflow")
    def workflow(self, obj):
        return obj.definition.slug

    @admin.display(description="version")
    def version_number(self, obj):
        return f"v{obj.version.number}"

    @admin.display(description="status")
    def badge(self, obj):
        return status_badge(obj.status)

    @admin.display(description="progress")
    def progress(self, obj):
        return f"{obj.completed_nodes}/{obj.total_nodes}"

    @admin.display(description="why is it not moving?")
    def why_not_moving(self, obj):
        # A finished execution can still list a timed-out handler on an abandoned thread.
        reasons = why_execution(obj.pk)
        if not reasons:
            return "—"
        return format_html_join("", "<div><code>{}</code> {}: {}</div>",
                                ((r.code, r.node, r.message) for r in reasons))

    @admin.display(description="duration")
    def duration(self, obj):
        if obj.started_at is None:
            return "—"
        end = obj.finished_at or timezone.now()
        text = human_duration(end - obj.started_at)
        return text if obj.finished_at else f"{text} so far"

    # --- detail fields -------------------------------------------------------------
    @admin.display(description="workflow")
    def workflow_link(self, obj):
        url = reverse("admin:workflows_workflowdefinition_change", args=[obj.definition_id])
        return format_html('<a href="{}">{}</a>', url, obj.definition.slug)

    @admin.display(description="version")
    def version_link(self, obj):
        url = reverse("admin:workflows_workflowversion_change", args=[obj.version_id])
        return format_html('<a href="{}">v{}</a>', url, obj.version.number)

    @admin.display(description="node runs")
    def node_runs_link(self, obj):
        count = obj.node_runs.count()
        url = reverse("admin:engine_noderun_changelist")
        return format_html('{} (<a href="{}?q={}">list them all</a>, '
                           '<a href="{}?q={}">all events</a>)', count, url, obj.pk,
                           reverse("admin:engine_executionevent_changelist"), obj.pk)

    @admin.display(description="input")
    def input_pretty(self, obj):
        return pretty_json(obj.input)

    @admin.display(description="output")
    def output_pretty(self, obj):
        return pretty_json(obj.output)

    @admin.display(description="error")
    def error_pretty(self, obj):
        return pretty_json(obj.error)

    @admin.display(description=f"the last {EVENTS_SHOWN} events")
    def events_table(self, obj):
        events = list(ExecutionEvent.objects.filter(execution_id=obj.pk)
                      .annotate(head=json_head("payload", 200)).defer("payload")
                      .order_by("-seq")[:EVENTS_SHOWN])
        if not events:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            ((e.seq, e.created_at.isoformat(timespec="milliseconds"), e.type,
              short_json(e.head, 200)) for e in reversed(events)))
        return format_html('<table><thead><tr><th>seq</th><th>time</th><th>type</th>'
                           '<th>payload</th></tr></thead><tbody>{}</tbody></table>', rows)

    # --- actions --------------------------------------------------------------------
    def has_cancel_permission(self, request):
        return request.user.has_perm(CANCEL_EXECUTION)

    @admin.action(description="Cancel selected executions", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        """Cancel each unfinished execution through the service; report what happened."""
        queryset = queryset.order_by()
        active = list(queryset.exclude(status__in=TERMINAL_EXECUTION)
                      .values_list("pk", flat=True)[: CANCEL_LIMIT + 1])
        finished = queryset.filter(status__in=TERMINAL_EXECUTION)[:COUNT_CAP].count()
        cancelled = 0
        for execution_id in active[:CANCEL_LIMIT]:
            try:
                cancel_execution(execution_id, user=request.user,
                                 reason=f"cancelled in the admin by "
                                        f"{request.user.get_username()}")
                cancelled += 1
            except Conflict:  # it finished between our read and its lock
                finished += 1
            except NotFound:  # deleted meanwhile (retention); nothing to cancel
                pass
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} execution"
                              f"{'' if cancelled == 1 else 's'}.", messages.SUCCESS)
        if finished:
            self.message_user(request, f"{finished} selected execution"
                              f"{' was' if finished == 1 else 's were'} already finished "
                              "and left as they were.", messages.WARNING)
        if len(active) > CANCEL_LIMIT:
            self.message_user(request, f"Stopped after {CANCEL_LIMIT} executions; run the "
                              "action again to cancel the rest.", messages.WARNING)
        if not (cancelled or finished):
            self.message_user(request, "Nothing to cancel.", messages.INFO)


# --- node runs and events ----------------------------------------------------------------

class ExecutionRowMixin:
    """Rows of one execution: link to it; search by its exact id or a row id."""

    search_fields = ("=id",)
    search_help_text = "An execution id (all its rows) or a row id."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        execution_id = as_uuid(term)
        if execution_id is not None:
            return queryset.filter(execution_id=execution_id), False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.none(), False

    @admin.display(description="execution")
    def execution_short(self, obj):
        return execution_link(obj.execution_id)

    @admin.display(description="execution")
    def execution_full(self, obj):
        return execution_link(obj.execution_id, str(obj.execution_id))


@admin.register(NodeRun)
class NodeRunAdmin(NodeRunColumnsMixin, ExecutionRowMixin, ReadOnlyMixin, BigTableAdmin):
    list_display = ("id", "execution_short", "node_id", "attempt", "badge", "compensation",
                    "worker", "created_at", "duration", "error_class")
    list_filter = ("status",)
    sortable_by = ("id",)
    ordering = ("-id",)
    raw_id_fields = ("execution",)
    list_defer = ("output", "wake_output", "error_message")
    fields = ("execution_full", "node_id", "attempt", "badge", "compensation", "priority",
              "queue", "idempotency_key", "output_pretty", "error_class", "error_message",
              "retryable", "not_before", "wake_at", "wake_output_pretty", "worker",
              "lease_expires_at", "lease_token", "lease_losses", "created_at", "started_at",
              "finished_at", "duration", "log_lines")
    readonly_fields = fields

    @admin.display(description="log (ctx.log)")
    def log_lines(self, obj):
        entry = NodeRunLog.objects.filter(node_run_id=obj.pk).first()
        if entry is None:
            return "—"
        return format_html_join("", "<div><code>{} {}</code> {}</div>",
                                ((line.get("at", ""), line.get("level", ""),
                                  line.get("message", "")) for line in entry.lines))


    @admin.display(description="output")
    def output_pretty(self, obj):
        return pretty_json(obj.output)

    @admin.display(description="wake output")
    def wake_output_pretty(self, obj):
        return pretty_json(obj.wake_output)


@admin.register(ExecutionEvent)
class ExecutionEventAdmin(ExecutionRowMixin, ReadOnlyMixin, BigTableAdmin):
    list_display = ("id", "execution_short", "seq", "type", "created_at", "payload_short")
    list_filter = (EventTypeFilter,)
    sortable_by = ("id",)
    ordering = ("-id",)
    raw_id_fields = ("execution",)
    fields = ("execution_full", "seq", "type", "created_at", "payload_pretty")
    readonly_fields = fields

    def changelist_queryset(self, queryset):
        return queryset.annotate(head=json_head("payload")).defer("payload")

    @admin.display(description="payload")
    def payload_short(self, obj):
        return short_json(obj.head)

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return pretty_json(obj.payload)


# --- starting executions from a workflow's page ------------------------------------------

class DefinitionAdmin(ReleaseAdminMixin, workflows_admin.WorkflowDefinitionAdmin):
    """The workflows floor's admin plus what needs the engine: start and executions."""

    actions = ("start_selected",)
    fieldsets = workflows_admin.WorkflowDefinitionAdmin.fieldsets + (
        ("Executions", {"fields": ("executions_link",)}),
    )
    readonly_fields = workflows_admin.WorkflowDefinitionAdmin.readonly_fields + (
        "executions_link",)

    def has_start_permission(self, request, obj=None):
        """May start something (the action is offered); `obj`: may start that one."""
        if obj is not None:
            return may_start_workflow(request.user, obj)
        return request.user.has_perm(START_EXECUTION)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_start"
        start = self.admin_site.admin_view(self.start_view)
        return [path("<path:object_id>/start/", start, name=name), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        definition = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "can_start": definition is not None
                         and self.has_start_permission(request, definition)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="executions")
    def executions_link(self, obj):
        url = reverse("admin:engine_execution_changelist")
        return format_html('<a href="{}?workflow={}">Executions of {}</a>', url, obj.pk,
                           obj.slug)

    def start_view(self, request, object_id):
        definition = self.get_object(request, unquote(object_id))
        if definition is None:
            raise Http404(f"no workflow {object_id}")
        if not self.has_start_permission(request, definition):
            raise PermissionDenied
        return admin_start.start_page(self, request, definition)

    @admin.action(description="Start an execution of each selected workflow (empty input)",
                  permissions=["start"])
    def start_selected(self, request, queryset):
        definitions = list(queryset[: START_LIMIT + 1])
        for definition in definitions[:START_LIMIT]:
            if self.has_start_permission(request, definition):
                self._start(request, definition)
            else:
                self.message_user(request, f"{definition.slug}: you may not start this "
                                  "workflow.", messages.ERROR)
        if len(definitions) > START_LIMIT:
            self.message_user(request, f"Started the first {START_LIMIT} selected workflows "
                              "only.", messages.WARNING)

    def _start(self, request, definition) -> Execution | None:
        try:
            execution = start_execution(StartRequest(workflow=definition.slug, input={},
                                                     user=request.user))
        except BraidError as exc:
            problems = "; ".join(f"{p.get('where')}: {p.get('message')}" for p in exc.problems)
            self.message_user(request, f"{definition.slug}: {exc.message}"
                              f"{': ' + problems if problems else ''}", messages.ERROR)
            return None
        self.message_user(request, format_html(
            'Started execution <a href="{}">{}</a> of {} v{}.',
            reverse("admin:engine_execution_change", args=[execution.pk]), execution.pk,
            definition.slug, execution.version.number), messages.SUCCESS)
        return execution


admin.site.unregister(WorkflowDefinition)
admin.site.register(WorkflowDefinition, DefinitionAdmin)
# The approval inbox and the queues page register themselves on import; django-q2's
# own pages become superuser-only.
from apps.engine import admin_approvals, admin_djangoq, admin_queues  # noqa: E402,F401
