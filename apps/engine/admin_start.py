"""The admin's "Start execution" page of a workflow: input, queue, priority, key.

The input is a JSON object checked by `start_execution` against the
workflow's `input_schema` (the same check as the API, the CLI and schedules);
each problem is shown on the form next to the input, and nothing is started.
"""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.engine.models import Execution
from apps.engine.start import StartRequest, start_execution
from apps.workflows.errors import BraidError
from apps.workflows.forms import BoundedJSONField
from apps.workflows.services import current_version
from apps.workflows.specs import graph_of


class StartForm(forms.Form):
    input = BoundedJSONField(
        require_object=True, required=False, initial=dict,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false",
                                     "class": "vLargeTextField braid-json"}),
        help_text="A JSON object, checked against the workflow's input schema (below).")
    # Not required: a bare POST starts with the empty input on `default` at priority 5.
    queue = forms.ChoiceField(choices=(), initial="default", required=False)
    priority = forms.IntegerField(min_value=0, max_value=9, initial=5, required=False,
                                  help_text="0 (low) to 9 (high); higher starts first.")
    idempotency_key = forms.CharField(
        required=False, max_length=200,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Optional. Starting again with the same key opens the execution it "
                  "started, instead of starting another.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = [(q, q) for q in settings.BRAID_QUEUES]

    def request_for(self, definition, user) -> StartRequest:
        data = self.cleaned_data
        priority = data["priority"]
        return StartRequest(workflow=definition.slug, input=data["input"] or {},
                            queue=data["queue"] or "default",
                            priority=5 if priority is None else priority,
                            idempotency_key=data["idempotency_key"] or None, user=user)

    def show_problems(self, exc: BraidError) -> None:
        """Put each problem of a refused start on the field it is about."""
        default = "input" if exc.message.startswith("input") else ""
        for problem in exc.problems or [{"where": default, "message": exc.message}]:
            where = problem.get("where") or ""
            if where == "input" or where.startswith("input/"):
                path = where.partition("/")[2]
                self.add_error("input", f"{path}: {problem['message']}" if path
                               else problem["message"])
            else:
                self.add_error(None, f"{where}: {problem['message']}" if where
                               else problem["message"])


def start_page(model_admin, request, definition):
    """GET: the form. POST: start, then open the execution; or the form with its errors."""
    form = StartForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        start = form.request_for(definition, request.user)
        key_used = bool(start.idempotency_key) and Execution.objects.filter(
            idempotency_key=start.idempotency_key).exists()
        try:
            execution = start_execution(start)
        except BraidError as exc:
            form.show_problems(exc)
        else:
            url = reverse("admin:engine_execution_change", args=[execution.pk])
            if key_used:
                model_admin.message_user(request, format_html(
                    "The idempotency key {} was used before: this is execution {}, started "
                    "earlier.", start.idempotency_key, execution.pk), messages.WARNING)
            else:
                model_admin.message_user(request, format_html(
                    'Started execution <a href="{}">{}</a> of {} v{}.', url, execution.pk,
                    definition.slug, execution.version.number), messages.SUCCESS)
            return HttpResponseRedirect(url)
    return TemplateResponse(request, "admin/workflows/workflowdefinition/start.html", {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta, "original": definition, "form": form,
        "title": f"Start {definition.name}", "input_schema": _input_schema(definition),
    })


def _input_schema(definition) -> str | None:
    try:
        schema = graph_of(current_version(definition.slug)).input_schema
    except BraidError:
        return None
    return json.dumps(schema, indent=2, ensure_ascii=False) if schema else None
