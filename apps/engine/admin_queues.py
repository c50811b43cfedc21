"""Queues in the admin: statistics, pause and resume; limits, pools and rate limits.

Every write goes through a service (`queues.pause_queue`, `flow_control.*`),
which also drops cached rules and wakes workers; every action and form needs
its permission (`engine.pause_queue`, the add/change/delete permissions of
each flow-control model).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html_join

from apps.engine import flow_control
from apps.engine.models import ConcurrencyLimit, NodeRun, Queue, RateLimit, ResourcePool
from apps.engine.permissions import PAUSE_QUEUE
from apps.engine.pools import PREFIX as POOL_PREFIX
from apps.engine.queues import ensure_queues, pause_queue, queue_stats, resume_queue
from apps.engine.statuses import RunStatus

STATS_WINDOW_S = 300.0


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "weight", "state", "ready", "delayed", "running", "waiting",
                    "oldest_ready", "completed", "failed", "claims_per_s", "changed")
    actions = ("pause_selected", "resume_selected")
    ordering = ("name",)
    list_display_links = None

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a queue's only state is paused, changed by the actions

    def has_pause_permission(self, request):
        return request.user.has_perm(PAUSE_QUEUE)

    def changelist_view(self, request, extra_context=None):
        ensure_queues()
        self._stats = {s["queue"]: s for s in queue_stats(STATS_WINDOW_S)}
        extra_context = {**(extra_context or {}),
                         "title": f"Queues (figures over the last {STATS_WINDOW_S:.0f} s)"}
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(name__in=list(settings.BRAID_QUEUES))

    def _stat(self, obj, key):
        return getattr(self, "_stats", {}).get(obj.name, {}).get(key)

    @admin.display(description="weight")
    def weight(self, obj):
        return settings.BRAID_QUEUES[obj.name].get("weight", 0)

    @admin.display(description="state")
    def state(self, obj):
        return "paused" if obj.paused else "running"

    @admin.display(description="ready")
    def ready(self, obj):
        return self._stat(obj, "ready")

    @admin.display(description="delayed (back-off)")
    def delayed(self, obj):
        return self._stat(obj, "delayed")

    @admin.display(description="running")
    def running(self, obj):
        return self._stat(obj, "running")

    @admin.display(description="waiting (timer, signal)")
    def waiting(self, obj):
        return self._stat(obj, "waiting")

    @admin.display(description="oldest ready (s)")
    def oldest_ready(self, obj):
        return self._stat(obj, "oldest_ready_s") or "—"

    @admin.display(description="succeeded")
    def completed(self, obj):
        return self._stat(obj, "completed")

    @admin.display(description="failed")
    def failed(self, obj):
        return self._stat(obj, "failed")

    @admin.display(description="claims/s")
    def claims_per_s(self, obj):
        return self._stat(obj, "claims_per_s")

    @admin.display(description="last change")
    def changed(self, obj):
        return f"{obj.changed_at:%Y-%m-%d %H:%M:%S} {obj.changed_by}".strip()

    @admin.action(description="Pause selected queues (work waits, nothing is lost)",
                  permissions=["pause"])
    def pause_selected(self, request, queryset):
        names = [pause_queue(q.name, request.user).name for q in queryset]
        self.message_user(request, f"Paused {', '.join(names)}.", messages.SUCCESS)

    @admin.action(description="Resume selected queues", permissions=["pause"])
    def resume_selected(self, request, queryset):
        names = [resume_queue(q.name, request.user).name for q in queryset]
        self.message_user(request, f"Resumed {', '.join(names)}.", messages.SUCCESS)


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    """Token buckets per queue, workflow (slug) or node type, shared by all workers."""

    list_display = ("scope", "target", "rate", "period_s", "capacity", "tokens_now")
    list_filter = ("scope",)
    fields = ("scope", "target", "rate", "period_s", "burst")

    @admin.display(description="tokens (at last claim)")
    def tokens_now(self, obj):
        return "full" if obj.tokens is None else f"{obj.tokens:.1f}"

    def save_model(self, request, obj, form, change):
        flow_control.save_rate_limit(obj)

    def delete_model(self, request, obj):
        flow_control.delete_rate_limits([obj.pk])

    def delete_queryset(self, request, queryset):
        flow_control.delete_rate_limits(queryset.values_list("pk", flat=True))


@admin.register(ConcurrencyLimit)
class ConcurrencyLimitAdmin(admin.ModelAdmin):
    """Admission control: global, per-workflow and per-key caps on running executions."""

    list_display = ("__str__", "workflow", "key", "max_running")
    raw_id_fields = ("workflow",)
    fields = ("workflow", "key", "max_running")

    def save_model(self, request, obj, form, change):
        flow_control.save_concurrency_limit(obj)

    def delete_model(self, request, obj):
        flow_control.delete_concurrency_limits([obj.pk])

    def delete_queryset(self, request, queryset):
        flow_control.delete_concurrency_limits(queryset.values_list("pk", flat=True))


@admin.register(ResourcePool)
class ResourcePoolAdmin(admin.ModelAdmin):
    """Pool sizes (set here) and who holds slots right now."""

    list_display = ("name", "size", "held", "waiting", "description")
    fields = ("name", "size", "description", "holders")
    readonly_fields = ("holders",)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "holders") if obj else ("holders",)

    @admin.display(description="slots held")
    def held(self, obj):
        return sum(NodeRun.objects.filter(status=RunStatus.RUNNING, pool=obj.name)
                   .values_list("pool_slots", flat=True))

    @admin.display(description="runs waiting")
    def waiting(self, obj):
        return NodeRun.objects.filter(status=RunStatus.WAITING,
                                      waiting_for=f"{POOL_PREFIX}{obj.name}").count()

    @admin.display(description="holders")
    def holders(self, obj):
        rows = NodeRun.objects.filter(status=RunStatus.RUNNING, pool=obj.name).values_list(
            "execution_id", "node_id", "pool_slots", "worker")[:100]
        return format_html_join("", "<div>{} {} ({} slots) on {}</div>", rows) or "—"

    def save_model(self, request, obj, form, change):
        flow_control.save_resource_pool(obj)

    def delete_model(self, request, obj):
        flow_control.delete_resource_pools([obj.pk])

    def delete_queryset(self, request, queryset):
        flow_control.delete_resource_pools(queryset.values_list("pk", flat=True))
