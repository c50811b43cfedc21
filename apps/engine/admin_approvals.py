"""The approval inbox: approve or reject parked approval nodes, with a note."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from apps.engine.errors import Conflict, InputInvalid
from apps.engine.models import PendingApproval
from apps.engine.permissions import DECIDE_APPROVAL
from apps.engine.signaling import decide_approval
from apps.engine.statuses import RunStatus
from apps.nodes import payloads
from apps.workflows.admin import BigTableAdmin, ReadOnlyMixin, pretty_json
from apps.workflows.specs import graph_for

DECIDE_LIMIT = 200


@admin.register(PendingApproval)
class PendingApprovalAdmin(ReadOnlyMixin, BigTableAdmin):
    list_display = ("execution_link", "workflow", "node_id", "title", "waiting_since",
                    "times_out")
    list_select_related = ("execution__definition",)
    fields = ("execution_link", "workflow", "node_id", "title", "form_schema",
              "waiting_since", "times_out")
    readonly_fields = fields
    actions = ("approve_selected", "reject_selected")
    ordering = ("-id",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=RunStatus.WAITING,
                                                   waiting_for="approval")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("engine.view_execution")

    def has_decide_permission(self, request):
        return request.user.has_perm(DECIDE_APPROVAL)

    @admin.display(description="execution")
    def execution_link(self, obj):
        from apps.engine.admin import execution_link

        return execution_link(obj.execution_id)

    @admin.display(description="workflow")
    def workflow(self, obj):
        return obj.execution.definition.slug

    def _config(self, obj) -> dict:
        node = graph_for(obj.execution.version_id).nodes.get(obj.node_id)
        return node.config if node else {}

    @admin.display(description="title")
    def title(self, obj):
        return self._config(obj).get("title", "")

    @admin.display(description="form (JSON Schema)")
    def form_schema(self, obj):
        return pretty_json(self._config(obj).get("form"))

    @admin.display(description="waiting since")
    def waiting_since(self, obj):
        return obj.started_at

    @admin.display(description="times out")
    def times_out(self, obj):
        return obj.wake_at or "never"

    @admin.action(description="Approve selected", permissions=["decide"])
    def approve_selected(self, request, queryset):
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected", permissions=["decide"])
    def reject_selected(self, request, queryset):
        return self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset, *, approve: bool):
        """First show a page for the note (and form values); then decide each."""
        verb = "approve" if approve else "reject"
        runs = list(queryset.select_related("execution")[:DECIDE_LIMIT])
        if "decide" not in request.POST:
            return TemplateResponse(request, "admin/engine/pendingapproval/decide.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta,
                "runs": runs, "verb": verb, "action": request.POST.get("action"),
                "title": f"{verb.capitalize()} {len(runs)} approval(s)"})
        note = request.POST.get("note", "")
        try:
            form = payloads.loads(request.POST.get("form") or "{}", "form values")
        except payloads.PayloadError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        done, refused = 0, []
        for run in runs:
            try:
                decide_approval(run.execution_id, run.node_id, approve=approve,
                                user=request.user, note=note, form=form)
                done += 1
            except (Conflict, InputInvalid) as exc:
                refused.append(f"{str(run.execution_id)[:8]}/{run.node_id}: {exc.message}")
        if done:
            self.message_user(request, format_html("{} {} approval(s).",
                                                   "Approved" if approve else "Rejected", done))
        for line in refused:
            self.message_user(request, line, messages.ERROR)
        return None
