"""A workflow's "Releases" page in the admin: versions, diff, deploy, live state, actions.

Mixed into the engine's workflow-definition admin (it needs the engine: smoke
runs and execution figures). Every view checks the same permission function
as the API and CLI (apps/workflows/permissions.py) and calls the same services
(apps/engine/rollout.py); nothing is written by hand.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.engine import rollout
from apps.workflows import permissions, portable, releases
from apps.workflows.diff import diff_graphs, field_changes
from apps.workflows.errors import BraidError
from apps.workflows.health import DEFAULT_THRESHOLDS
from apps.workflows.models import Strategy
from apps.workflows.routing import KEY_KINDS

ACTIONS = {
    "promote": ("Promote", "Move the release one step on (the next canary share, or all "
                "traffic to the candidate)."),
    "abort": ("Abort", "Stop the release: the stable version takes every new execution. "
              "Running executions finish on their own version."),
    "rollback": ("Roll back", "Back to an earlier version at once, for new executions. "
                 "Running executions finish on their own version."),
}


class DeployForm(forms.Form):
    version = forms.TypedChoiceField(coerce=int)
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.CANARY)
    steps = forms.CharField(initial="5,25,50,100", required=False,
                            help_text="Canary: percents of new executions, ending at 100.")
    routing_key = forms.ChoiceField(choices=[(k, k) for k in KEY_KINDS], required=False,
                                    initial=KEY_KINDS[0],
                                    help_text="Canary: what routing hashes, so a retried "
                                              "request lands on the same version.")
    routing_expression = forms.CharField(required=False, label="Key expression",
                                         help_text="With the expression key: CEL over input, "
                                                   "e.g. input.customer")
    thresholds = forms.CharField(widget=forms.Textarea(attrs={"rows": 10, "cols": 40}),
                                 required=False,
                                 initial=json.dumps(DEFAULT_THRESHOLDS, indent=1),
                                 help_text="Canary: when to roll back and when to promote.")
    smoke_inputs = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=False,
        label="Smoke inputs", help_text='Blue-green: [{"input": {...}, "expected": {...}}]; '
                                        "expected output keys are optional.")
    reason = forms.CharField(required=False)

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v.number, f"v{v.number}") for v in versions]

    def options(self) -> dict:
        data = self.cleaned_data
        options = {"strategy": data["strategy"], "reason": data["reason"],
                   "routing_key": data["routing_key"] or KEY_KINDS[0],
                   "routing_expression": data["routing_expression"]}
        if data["strategy"] == Strategy.CANARY:
            options["steps"] = self._steps(data["steps"])
            options["thresholds"] = self._json("thresholds", data["thresholds"] or "{}")
        if data["strategy"] == Strategy.BLUE_GREEN:
            options["smoke_inputs"] = self._json("smoke_inputs", data["smoke_inputs"] or "[]")
        return options

    def _steps(self, text: str) -> list[int]:
        try:
            return [int(p) for p in (text or "5,25,50,100").split(",") if p.strip()]
        except ValueError:
            raise BraidError("steps must be whole percents separated by commas", [
                {"where": "steps", "node": None, "message": f"{text!r} is not like 5,25,100"}
            ]) from None

    def _json(self, name: str, text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BraidError(f"{name} is not valid JSON", [
                {"where": name, "node": None,
                 "message": f"line {exc.lineno}, column {exc.colno}: {exc.msg}"}]) from None


class ReleaseAdminMixin:
    """Adds /releases/ pages under a workflow definition's admin page."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/releases/", wrap(self.releases_view),
                 name=f"{name}_releases"),
            path("<path:object_id>/releases/diff/", wrap(self.diff_view),
                 name=f"{name}_diff"),
            path("<path:object_id>/releases/deploy/", wrap(self.deploy_view),
                 name=f"{name}_deploy"),
            path("<path:object_id>/releases/export/<int:number>/", wrap(self.export_view),
                 name=f"{name}_export"),
            path("<path:object_id>/releases/<str:action>/", wrap(self.action_view),
                 name=f"{name}_release_action"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_releases"
        extra_context = {**(extra_context or {}),
                         "releases_url": reverse(name, args=[unquote(object_id)])}
        return super().change_view(request, object_id, form_url, extra_context)

    # --- views ----------------------------------------------------------------------

    def releases_view(self, request, object_id, form=None):
        definition = self._definition(request, object_id)
        permissions.check_view(request.user, definition)
        versions = list(definition.versions.select_related("author").defer("graph")[:100])
        state = rollout.release_state(definition.slug, user=request.user)
        for row in state["versions"]:
            row["success_text"] = (f"{1 - row['failure_rate']:.1%}" if row["finished"]
                                   else "—")
        for event in state["log"]:
            event["figures_json"] = json.dumps(event["figures"], indent=1, default=str)
        active = releases.active_release(definition)
        if form is None:
            form = DeployForm(versions=versions, initial={
                "version": versions[0].number if versions else None})
        context = {
            **self.admin_site.each_context(request), "opts": self.opts,
            "original": definition, "title": f"Releases of {definition.slug}",
            "versions": versions, "state": state, "active": active,
            "current_id": definition.current_version_id,
            "candidate_id": active.candidate_version_id if active else None,
            "form": form, "can": {a: permissions.can(request.user, a, definition)
                                  for a in ("deploy", "promote", "abort", "rollback")},
            "compare": (versions[1].number, versions[0].number) if len(versions) > 1 else None,
        }
        return TemplateResponse(request, "admin/workflows/release/releases.html", context)

    def diff_view(self, request, object_id):
        definition = self._definition(request, object_id)
        permissions.check_view(request.user, definition)
        try:
            a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
            old = releases.version_number(definition, a)
            new = releases.version_number(definition, b)
        except (ValueError, BraidError) as exc:
            messages.error(request, f"Choose two versions to compare ({exc}).")
            return HttpResponseRedirect(self._url("releases", definition))
        diff = diff_graphs(old.graph, new.graph)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts,
            "original": definition, "title": f"{definition.slug}: v{a} → v{b}",
            "a": old, "b": new, "diff": diff, "rows": side_by_side(old.graph, new.graph),
            "edges": edge_rows(old.graph, new.graph),
            "top": lines_pair({k: v for k, v in old.graph.items() if k not in ("nodes", "edges")},
                              {k: v for k, v in new.graph.items() if k not in ("nodes", "edges")}),
        }
        return TemplateResponse(request, "admin/workflows/release/diff.html", context)

    def deploy_view(self, request, object_id):
        definition = self._definition(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(self._url("releases", definition))
        permissions.check_deploy(request.user, definition)
        versions = list(definition.versions.defer("graph")[:100])
        form = DeployForm(request.POST, versions=versions)
        if form.is_valid():
            try:
                release = rollout.deploy(definition.slug, form.cleaned_data["version"],
                                         user=request.user, **form.options())
            except BraidError as exc:
                form.add_error(None, exc.message)
                for problem in exc.problems:
                    form.add_error(None, f"{problem.get('where')}: {problem.get('message')}")
            else:
                messages.success(request, f"Deployed v{release.candidate_version.number} "
                                          f"({release.strategy}).")
                return HttpResponseRedirect(self._url("releases", definition))
        return self.releases_view(request, object_id, form=form)

    def action_view(self, request, object_id, action):
        definition = self._definition(request, object_id)
        if action not in ACTIONS:
            raise Http404(f"no release action {action!r}")
        if not permissions.can(request.user, action, definition):
            raise PermissionDenied
        active = releases.active_release(definition)
        if request.method == "POST":
            reason = request.POST.get("reason", "")
            try:
                if action == "rollback":
                    to = request.POST.get("to") or None
                    rollout.rollback(definition.slug, int(to) if to else None,
                                     user=request.user, reason=reason)
                else:
                    getattr(rollout, action)(definition.slug, user=request.user, reason=reason)
            except BraidError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{ACTIONS[action][0]}: done.")
            return HttpResponseRedirect(self._url("releases", definition))
        label, explanation = ACTIONS[action]
        earlier = definition.versions.exclude(pk=definition.current_version_id).defer("graph")
        context = {
            **self.admin_site.each_context(request), "opts": self.opts,
            "original": definition, "title": f"{label} {definition.slug}?",
            "action": action, "label": label, "explanation": explanation, "active": active,
            "earlier": earlier[:100] if action == "rollback" else (),
        }
        return TemplateResponse(request, "admin/workflows/release/confirm.html", context)

    def export_view(self, request, object_id, number):
        definition = self._definition(request, object_id)
        permissions.check_view(request.user, definition)
        try:
            version = releases.version_number(definition, number)
        except BraidError as exc:
            raise Http404(exc.message) from None
        response = HttpResponse(json.dumps(portable.export_version(version), indent=2),
                                content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="{definition.slug}-v{number}.json"')
        return response

    # --- helpers ----------------------------------------------------------------------

    def _definition(self, request, object_id):
        definition = self.get_object(request, unquote(object_id))
        if definition is None:
            raise Http404(f"no workflow {object_id}")
        return definition

    def _url(self, view: str, definition) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}",
                       args=[definition.pk])


# --- the side-by-side diff ------------------------------------------------------------------

def _flat(value, prefix: str = "") -> dict[str, str]:
    """Leaf paths of a JSON value and their JSON text."""
    if isinstance(value, dict) and (value or not prefix):
        out = {}
        for key in sorted(value, key=str):
            out.update(_flat(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "(value)": json.dumps(value, ensure_ascii=False)}


def lines_pair(old: dict | None, new: dict | None) -> list[dict]:
    """Rows of (path, old text, new text, state) for two objects, path by path."""
    left, right = _flat(old or {}), _flat(new or {})
    changed = {c.path for c in field_changes(old or {}, new or {})}
    rows = []
    for key in sorted(left.keys() | right.keys()):
        in_changed = key in changed or any(key.startswith(p + ".") for p in changed)
        state = ("added" if key not in left else "removed" if key not in right
                 else "changed" if in_changed else "same")
        rows.append({"path": key, "old": left.get(key), "new": right.get(key),
                     "state": state})
    return rows


def side_by_side(old: dict, new: dict) -> list[dict]:
    """One entry per node id in either graph: its state and its field rows."""
    a = {n["id"]: n for n in old.get("nodes") or []}
    b = {n["id"]: n for n in new.get("nodes") or []}
    nodes = []
    for node_id in sorted(a.keys() | b.keys()):
        rows = lines_pair(a.get(node_id), b.get(node_id))
        state = ("added" if node_id not in a else "removed" if node_id not in b
                 else "changed" if any(r["state"] != "same" for r in rows) else "same")
        nodes.append({"id": node_id, "state": state, "rows": rows})
    order = {"changed": 0, "added": 1, "removed": 2, "same": 3}
    return sorted(nodes, key=lambda n: (order[n["state"]], n["id"]))


def edge_rows(old: dict, new: dict) -> list[dict]:
    diff = diff_graphs(old, new)
    added = {json.dumps(e, sort_keys=True) for e in diff.edges_added}
    removed = {json.dumps(e, sort_keys=True) for e in diff.edges_removed}
    rows = []
    for edge in old.get("edges") or []:
        key = json.dumps(edge, sort_keys=True)
        rows.append({"old": _edge_text(edge), "new": None if key in removed
                     else _edge_text(edge), "state": "removed" if key in removed else "same"})
    for edge in new.get("edges") or []:
        if json.dumps(edge, sort_keys=True) in added:
            rows.append({"old": None, "new": _edge_text(edge), "state": "added"})
    return rows


def _edge_text(edge: dict) -> str:
    when = f" when {edge['when']}" if edge.get("when") else ""
    return f"{edge.get('from')} → {edge.get('to')}{when}"

