"""The execution page's operator buttons: retry, skip with an output, resume, re-run
from a node, compensate, mark failed, pause, unpause.

The engine's ExecutionAdmin lives on a lower floor and knows nothing of these;
this floor registers a subclass in its place that adds the buttons, one
confirmation page per action (with a JSON editor where it takes JSON) and the
diagnosis. Every button calls the same service as the API and the CLI.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.engine.admin import ExecutionAdmin
from apps.engine.models import Execution, NodeRun
from apps.nodes import payloads
from apps.operations import interventions
from apps.operations.diagnose import diagnose
from apps.workflows.errors import BraidError
from apps.workflows.specs import graph_for

RETRY = "engine.retry_execution"
CANCEL = "engine.cancel_execution"


class Action:
    def __init__(self, name, label, permission, statuses, help_text, node=None, json_field=None,
                 danger=False):
        self.name, self.label, self.permission = name, label, permission
        self.statuses, self.help_text = statuses, help_text
        self.node, self.json_field, self.danger = node, json_field, danger


ACTIONS = {a.name: a for a in [
    Action("retry", "Retry node", RETRY, {"failed"},
           "Run a failed node again; nodes cancelled beside it run again too.",
           node="stopped", json_field="input"),
    Action("skip", "Skip node with output", RETRY, {"failed", "running", "waiting", "pending"},
           "Treat the node as succeeded with the output you give: downstream nodes run as if "
           "it had produced it.", node="skippable", json_field="output"),
    Action("resume", "Resume", RETRY, {"failed"},
           "Run again every node that failed or was cancelled; what succeeded is kept."),
    Action("rerun", "Re-run from node", RETRY,
           {"succeeded", "failed", "cancelled", "compensated"},
           "Start a new execution on the same version and input that reuses the outputs of the "
           "nodes before this one.", node="forward"),
    Action("compensate", "Compensate", CANCEL, {"failed"},
           "Undo the completed steps now: their compensating nodes run, last completed first.",
           danger=True),
    Action("pause", "Pause", RETRY, {"pending", "running", "waiting"},
           "Hold its ready work (no worker is held); what runs now finishes."),
    Action("unpause", "Unpause", RETRY, {"pending", "running", "waiting"},
           "Release the work a pause held."),
    Action("mark_failed", "Mark failed", CANCEL, {"pending", "running", "waiting"},
           "Stop it as failed; it can then be retried, resumed or compensated.", danger=True),
]}


def available(action: Action, execution: Execution) -> bool:
    if execution.status not in action.statuses:
        return False
    if action.name == "pause":
        return not execution.paused
    if action.name == "unpause":
        return execution.paused
    return True


def node_choices(action: Action, execution: Execution) -> list[tuple[str, str]]:
    latest = {}
    for run in NodeRun.objects.filter(execution=execution, compensation=False).order_by(
            "attempt", "id"):
        latest[run.node_id] = run.status
    if action.node == "forward":
        return [(n, f"{n} ({latest.get(n, 'not reached')})")
                for n in graph_for(execution.version_id).forward_nodes]
    wanted = {"stopped": {"failed", "cancelled"},
              "skippable": {"failed", "cancelled", "ready", "waiting", "running"}}[action.node]
    return [(n, f"{n} ({s})") for n, s in latest.items() if s in wanted]


class InterventionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500,
                             widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Kept in the execution's audit trail.")

    def __init__(self, *args, action: Action, execution: Execution, **kwargs):
        super().__init__(*args, **kwargs)
        if action.node:
            self.fields["node"] = forms.ChoiceField(choices=node_choices(action, execution))
        if action.json_field:
            self.fields[action.json_field] = forms.CharField(
                required=action.json_field == "output",
                widget=forms.Textarea(attrs={"rows": 10, "cols": 80, "spellcheck": "false",
                                             "class": "vLargeTextField braid-json"}),
                help_text=("The node's output, as JSON." if action.json_field == "output" else
                           "Optional: this attempt's own input (a JSON object) instead of the "
                           "execution's."))
        self.action = action

    def clean(self):
        data = super().clean()
        field = self.action.json_field
        text = (data.get(field) or "").strip() if field else ""
        if field and text:
            try:
                data[field] = payloads.loads(text, field)
            except payloads.PayloadError as exc:
                self.add_error(field, str(exc))
        elif field:
            data[field] = None
        return data


def run_action(action: Action, execution_id, user, data: dict):
    reason = data.get("reason", "")
    node = data.get("node")
    calls = {
        "retry": lambda: interventions.retry_node(execution_id, node, user=user, reason=reason,
                                                  node_input=data.get("input")),
        "skip": lambda: interventions.skip_node(execution_id, node, data.get("output"),
                                                user=user, reason=reason),
        "resume": lambda: interventions.resume(execution_id, user=user, reason=reason),
        "rerun": lambda: interventions.rerun_from(execution_id, node, user=user, reason=reason),
        "compensate": lambda: interventions.compensate(execution_id, user=user, reason=reason),
        "pause": lambda: interventions.pause(execution_id, user=user, reason=reason),
        "unpause": lambda: interventions.unpause(execution_id, user=user, reason=reason),
        "mark_failed": lambda: interventions.mark_failed(execution_id, user=user, reason=reason),
    }
    return calls[action.name]()


BULK_LIMIT = 500  # executions one bulk action handles; run it again for more


class OperatorExecutionAdmin(ExecutionAdmin):
    change_form_template = "admin/engine/execution/change_form.html"
    actions = (*ExecutionAdmin.actions, "resume_selected", "pause_selected",
               "unpause_selected")

    # --- bulk actions: each execution through its service, as the button would ------
    def has_retry_permission(self, request):
        return request.user.has_perm(RETRY)

    def _bulk(self, request, queryset, name: str) -> None:
        step = ACTIONS[name]
        ids = list(queryset.order_by().filter(status__in=step.statuses)
                   .values_list("pk", flat=True)[:BULK_LIMIT + 1])
        # Counted before acting: what the action does moves them out of `statuses`.
        skipped = queryset.exclude(status__in=step.statuses)[:BULK_LIMIT].count()
        done, refused = 0, []
        for execution_id in ids[:BULK_LIMIT]:
            try:
                run_action(step, execution_id, request.user,
                           {"reason": f"bulk {step.label.lower()} in the admin"})
                done += 1
            except BraidError as exc:  # its state changed, or it is already paused…
                refused.append(f"{str(execution_id)[:8]}: {exc.message}")
        if done:
            self.message_user(request, f"{step.label}: {done} execution"
                              f"{'' if done == 1 else 's'}.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{len(refused)} refused: " + "; ".join(refused[:5]),
                              messages.WARNING)
        if skipped:
            self.message_user(request, f"{skipped} selected execution"
                              f"{' was' if skipped == 1 else 's were'} not "
                              f"{', '.join(sorted(step.statuses))} and left as "
                              f"{'it was' if skipped == 1 else 'they were'}.", messages.WARNING)
        if len(ids) > BULK_LIMIT:
            self.message_user(request, f"Stopped after {BULK_LIMIT} executions; run the "
                              "action again for the rest.", messages.WARNING)

    @admin.action(description="Resume selected failed executions", permissions=["retry"])
    def resume_selected(self, request, queryset):
        self._bulk(request, queryset, "resume")

    @admin.action(description="Pause selected executions", permissions=["retry"])
    def pause_selected(self, request, queryset):
        self._bulk(request, queryset.filter(paused=False), "pause")

    @admin.action(description="Unpause selected executions", permissions=["retry"])
    def unpause_selected(self, request, queryset):
        self._bulk(request, queryset.filter(paused=True), "unpause")

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        fieldsets.insert(1, ("Diagnosis", {"fields": ("diagnosis",),
                                           "classes": ("collapse",)}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "diagnosis")

    @admin.display(description="diagnosis")
    def diagnosis(self, obj):
        report = diagnose(obj.pk)
        rows = [("stuck", f"{s['node']} has run {s['ran_s']} s (expected ≤ {s['expected_s']} s)")
                for s in report["stuck_nodes"]]
        rows += [("error", f"{e['node']}#{e['attempt']} [{e['error_class']}] "
                           f"{e['message'][:300]}") for e in report["node_errors"][:5]]
        rows += [("suggestion", advice) for advice in report["suggestions"]]
        if not rows:
            return "Nothing looks wrong."
        return format_html_join("", "<div><strong>{}</strong> {}</div>", rows)

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context["interventions"] = [
                (a, reverse("admin:engine_execution_intervene", args=[obj.pk, a.name]))
                for a in ACTIONS.values()
                if available(a, obj) and request.user.has_perm(a.permission)]
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def get_urls(self):
        view = self.admin_site.admin_view(self.intervene_view)
        return [path("<path:object_id>/intervene/<str:action>/", view,
                     name="engine_execution_intervene"), *super().get_urls()]

    def intervene_view(self, request, object_id, action):
        step = ACTIONS.get(action)
        execution = self.get_object(request, unquote(object_id))
        if step is None or execution is None:
            raise Http404("no such execution or action")
        if not request.user.has_perm(step.permission):
            raise PermissionDenied
        change_url = reverse("admin:engine_execution_change", args=[execution.pk])
        form = InterventionForm(request.POST or None, action=step, execution=execution)
        if request.method == "POST" and form.is_valid():
            try:
                result = run_action(step, execution.pk, request.user, form.cleaned_data)
            except BraidError as exc:
                form.add_error(None, exc.message)
            else:
                if step.name == "rerun":
                    url = reverse("admin:engine_execution_change", args=[result.pk])
                    self.message_user(request, format_html(
                        'Re-run started as <a href="{}">{}</a>.', url, result.pk),
                        messages.SUCCESS)
                    return HttpResponseRedirect(url)
                self.message_user(request, f"{step.label}: done (execution is now "
                                           f"{result.status}).", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {**self.admin_site.each_context(request), "opts": self.opts,
                   "original": execution, "form": form, "step": step,
                   "change_url": change_url, "title": f"{step.label}: {execution.pk}"}
        return TemplateResponse(request, "admin/engine/execution/intervene.html", context)


admin.site.unregister(Execution)
admin.site.register(Execution, OperatorExecutionAdmin)
