"""The operator alert inbox in the admin, its routes, silences and rule settings.

Actions call `services` (the same functions the API and the CLI use) and need
the `operations.handle_alert` permission; a viewer sees the inbox and nothing
more.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from apps.engine.errors import Conflict
from apps.operations import services
from apps.operations.models import (
    Alert,
    AlertNote,
    HostSample,
    Notification,
    NotificationRoute,
    RuleSetting,
    Silence,
)
from apps.operations.rules import DEFAULT_RULES

SEVERITY_COLOURS = {"critical": "#dc3545", "warning": "#fd7e14", "info": "#0d6efd"}


class AlertNoteInline(admin.TabularInline):
    model = AlertNote
    extra = 0
    can_delete = False
    fields = ("at", "author", "action", "text")
    readonly_fields = ("at", "author", "action", "text")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("severity_badge", "title", "state", "occurrences", "last_seen", "assignee",
                    "rule")
    list_filter = ("state", "severity", "rule")
    search_fields = ("title", "subject_id")
    list_select_related = ("assignee",)
    actions = ("acknowledge", "assign_to_me", "resolve")
    inlines = [AlertNoteInline]
    readonly_fields = ("rule", "severity", "state", "title", "subject", "execution_link",
                       "details", "occurrences", "first_seen", "last_seen", "resolved_at",
                       "resolved_by", "assignee")
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_handle_permission(self, request):
        return request.user.has_perm("operations.handle_alert")

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, alert):
        return format_html('<span style="background:{};color:#fff;padding:1px 7px;'
                           'border-radius:8px">{}</span>',
                           SEVERITY_COLOURS.get(alert.severity, "#6c757d"), alert.severity)

    @admin.display(description="subject")
    def subject(self, alert):
        return f"{alert.subject_kind} {alert.subject_id}".strip()

    @admin.display(description="execution")
    def execution_link(self, alert):
        if not alert.execution_id:
            return "—"
        url = reverse("admin:engine_execution_change", args=[alert.execution_id])
        return format_html('<a href="{}">{}</a> (diagnosis on its page)', url,
                           alert.execution_id)

    def _each(self, request, queryset, verb, call):
        done = 0
        for alert in queryset:
            try:
                call(alert)
                done += 1
            except Conflict as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"{done} alert(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Acknowledge selected alerts", permissions=["handle"])
    def acknowledge(self, request, queryset):
        self._each(request, queryset, "acknowledged",
                   lambda a: services.acknowledge(a, request.user))

    @admin.action(description="Assign selected alerts to me", permissions=["handle"])
    def assign_to_me(self, request, queryset):
        self._each(request, queryset, "assigned to you",
                   lambda a: services.assign(a, request.user, request.user))

    @admin.action(description="Resolve selected alerts", permissions=["handle"])
    def resolve(self, request, queryset):
        self._each(request, queryset, "resolved", lambda a: services.resolve(a, request.user))


@admin.register(NotificationRoute)
class NotificationRouteAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "target", "min_severity", "enabled")

    def save_model(self, request, obj, form, change):
        if obj.kind == "webhook":
            # The same guard as the http node: no private networks unless allow-listed.
            from django.conf import settings

            from apps.nodes.netguard import resolve_target

            try:
                resolve_target(obj.target, settings.BRAID["HTTP_ALLOW"])
            except Exception as exc:
                self.message_user(request, f"webhook refused for now: {exc}", messages.WARNING)
        super().save_model(request, obj, form, change)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ("rule", "subject_id", "until", "reason", "created_by")
    readonly_fields = ("created_by",)

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(RuleSetting)
class RuleSettingAdmin(admin.ModelAdmin):
    list_display = ("rule", "enabled", "severity", "threshold", "for_s")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "rule":
            from django import forms

            return forms.ChoiceField(choices=[(r, r) for r in DEFAULT_RULES])
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "alert", "route", "event", "state", "attempts", "next_at", "last_error")
    list_filter = ("state",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(HostSample)
class HostSampleAdmin(admin.ModelAdmin):
    list_display = ("host", "at", "cpu_percent", "memory_percent", "memory_used_mb", "load_1m",
                    "db_connections")
    list_filter = ("host",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

from apps.operations import admin_interventions  # noqa: E402,F401 - the execution page's buttons
