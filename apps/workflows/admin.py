"""Admin for workflow definitions and their immutable versions.

Writes go through `services.py`: a version is published by `publish_version`
(the `braid` command, later the API), never typed into a form, so versions are
read-only here. The engine's admin adds the "Start execution" action and the
executions link on top of `WorkflowDefinitionAdmin` (engine sits above this
floor; this module imports nothing from it).

The helpers at the top keep every changelist cheap on tables with millions of
rows; the engine's admin uses them too.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import TextField
from django.db.models.functions import Cast, Substr
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from apps.workflows.models import Release, ReleaseEvent, WorkflowDefinition, WorkflowVersion

# --- shared helpers for big tables --------------------------------------------

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows: `COUNT(*) FROM (… LIMIT cap)`.

    The admin counts the filtered rows on every changelist; on a table of
    millions an unbounded COUNT(*) is a full scan. Past the cap the list says
    "10000" and pages stop at 10000 / list_per_page: filter or search instead.
    """

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by().values("pk")[:COUNT_CAP].count()


class LeanChangeList(ChangeList):
    """A changelist that leaves big JSON columns out of its rows (see `list_defer`)."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return self.model_admin.changelist_queryset(queryset)


class BigTableAdmin(admin.ModelAdmin):
    """Defaults for admins of tables that grow without bound."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are a COUNT per filter choice
    list_per_page = 50
    list_max_show_all = 200
    # Columns a list never shows; a JSON payload may be up to a megabyte a row.
    list_defer: tuple[str, ...] = ()

    def get_changelist(self, request, **kwargs):
        return LeanChangeList

    def changelist_queryset(self, queryset):
        return queryset.defer(*self.list_defer) if self.list_defer else queryset


def json_head(field: str, length: int = 120):
    """The first `length` characters of a JSON column, cut in the database."""
    return Substr(Cast(field, TextField()), 1, length)


def pretty_json(value) -> str:
    """JSON shown readable and escaped in a <pre>."""
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="white-space:pre-wrap;margin:0;max-height:40em;'
                       'overflow:auto">{}</pre>', text)


def short_json(value, length: int = 80) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)
    return text if len(text) <= length else text[: length - 1] + "…"


def limited_formset(limit: int) -> type[BaseInlineFormSet]:
    """An inline formset showing only the first `limit` rows of its (ordered) queryset."""

    class LimitedInlineFormSet(BaseInlineFormSet):
        def get_queryset(self):
            if not hasattr(self, "_limited"):
                self._limited = super().get_queryset()[:limit]
            return self._limited

    return LimitedInlineFormSet


class ReadOnlyMixin:
    """Viewing only: rows change through services, never by hand in a form."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class NamedDefinitionFilter(admin.SimpleListFilter):
    """Filter by workflow, listing named (not ad-hoc) workflows only, at most 100.

    Any definition id works in the URL (`?workflow=<id>`), so links from a
    definition's page filter by it even when it is not listed.
    """

    title = "workflow"
    parameter_name = "workflow"
    field = "definition_id"
    max_choices = 100

    def lookups(self, request, model_admin):
        rows = (WorkflowDefinition.objects.filter(adhoc=False).order_by("slug")
                .values_list("pk", "slug")[: self.max_choices])
        return [(str(pk), slug) for pk, slug in rows]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{self.field: int(value)})


# --- definitions -------------------------------------------------------------------

class VersionInline(ReadOnlyMixin, admin.TabularInline):
    model = WorkflowVersion
    formset = limited_formset(50)
    fk_name = "definition"
    verbose_name_plural = "versions (the latest 50)"
    fields = ("version_link", "checksum_short", "author", "notes", "created_at")
    readonly_fields = fields
    ordering = ("-number",)
    extra = 0
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author").defer("graph")

    @admin.display(description="version")
    def version_link(self, obj):
        url = reverse("admin:workflows_workflowversion_change", args=[obj.pk])
        return format_html('<a href="{}">v{}</a>', url, obj.number)

    @admin.display(description="checksum")
    def checksum_short(self, obj):
        return obj.checksum[:12]


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(BigTableAdmin):
    list_display = ("slug", "name", "current_version_number", "adhoc", "owner", "updated_at")
    list_display_links = ("slug",)
    list_filter = ("adhoc",)
    list_select_related = ("current_version", "owner")
    search_fields = ("=slug", "^name")
    search_help_text = "An exact slug, or the start of a name."
    sortable_by = ("slug", "updated_at")
    ordering = ("slug",)
    raw_id_fields = ("owner",)
    fieldsets = (
        (None, {"fields": ("slug", "name", "description", "owner")}),
        ("Versions", {"fields": ("current_version_link", "adhoc", "created_at",
                                 "updated_at")}),
    )
    readonly_fields = ("slug", "current_version_link", "adhoc", "created_at", "updated_at")
    inlines = (VersionInline,)

    def has_add_permission(self, request):
        # A definition comes to life with its first version: publish_version.
        return False

    def has_delete_permission(self, request, obj=None):
        # Executions pin versions for life (PROTECT), and collecting them for the
        # confirmation page would read every execution of the workflow.
        return False

    @admin.display(description="current version", ordering="current_version__number")
    def current_version_number(self, obj):
        return f"v{obj.current_version.number}" if obj.current_version else "—"

    @admin.display(description="current version")
    def current_version_link(self, obj):
        if obj.current_version_id is None:
            return "—"
        url = reverse("admin:workflows_workflowversion_change", args=[obj.current_version_id])
        return format_html('<a href="{}">v{}</a>', url, obj.current_version.number)


# --- versions --------------------------------------------------------------------

@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(ReadOnlyMixin, BigTableAdmin):
    list_display = ("__str__", "definition", "number", "checksum_short", "author",
                    "created_at")
    list_select_related = ("definition", "author")
    list_filter = (NamedDefinitionFilter,)
    search_fields = ("=definition__slug", "=checksum")
    search_help_text = "An exact workflow slug or checksum."
    sortable_by = ("number", "created_at")
    ordering = ("-id",)
    raw_id_fields = ("definition", "author")
    list_defer = ("graph",)
    fields = ("definition", "number", "checksum", "author", "notes", "created_at",
              "graph_pretty")
    readonly_fields = fields

    @admin.display(description="checksum")
    def checksum_short(self, obj):
        return obj.checksum[:12]

    @admin.display(description="graph")
    def graph_pretty(self, obj):
        return pretty_json(obj.graph)


# --- releases and their log (read-only: they change through the release services) ------

@admin.register(Release)
class ReleaseAdmin(ReadOnlyMixin, BigTableAdmin):
    list_display = ("__str__", "strategy", "state", "percent", "created_by", "created_at",
                    "finished_at")
    list_select_related = ("definition", "candidate_version", "created_by")
    list_filter = ("state", "strategy", NamedDefinitionFilter)
    search_fields = ("=definition__slug",)
    search_help_text = "An exact workflow slug."
    ordering = ("-id",)
    fields = ("definition", "strategy", "state", "stable_version", "candidate_version",
              "steps", "step_index", "step_started_at", "routing_key", "routing_expression",
              "thresholds", "smoke_inputs", "smoke_execution_ids", "smoke_timeout_s",
              "reason", "created_by", "created_at", "finished_at")
    readonly_fields = fields


@admin.register(ReleaseEvent)
class ReleaseEventAdmin(ReadOnlyMixin, BigTableAdmin):
    """The release log of every workflow: who did what, when, why, with which figures."""

    list_display = ("created_at", "definition", "kind", "severity", "who", "reason")
    list_select_related = ("definition",)
    list_filter = ("kind", "severity", NamedDefinitionFilter)
    search_fields = ("=definition__slug", "=actor_name")
    search_help_text = "An exact workflow slug or user name."
    ordering = ("-id",)
    list_defer = ("figures",)
    fields = ("created_at", "definition", "release", "kind", "severity", "actor_name",
              "reason", "figures_pretty")
    readonly_fields = fields

    @admin.display(description="who")
    def who(self, obj):
        return obj.actor_name or "system"

    @admin.display(description="figures")
    def figures_pretty(self, obj):
        return pretty_json(obj.figures)
