"""What every API view shares: visibility (404), role checks (403), scopes, docs."""

from __future__ import annotations

import uuid

from rest_framework import exceptions
from rest_framework.views import APIView

from apps.engine.models import Execution
from apps.teams import access
from apps.workflows.models import WorkflowDefinition


class BraidView(APIView):
    """Methods map to token scopes in `scopes`; unlisted reads need `read`."""

    scopes: dict[str, str] = {}


def require(request, action: str, obj) -> None:
    """403 unless the user's team role allows `action` on `obj` (they can already see it)."""
    if not access.may(request.user, action, obj):
        raise exceptions.PermissionDenied(f"your role does not allow `{action}` here")


def visible_definitions(request):
    return access.visible(WorkflowDefinition.objects.all(), request.user, "team")


def visible_executions(request):
    return access.visible(Execution.objects.all(), request.user, "definition__team")


def executions_with_version(request):
    """Visible executions with their workflow and version, but not the version's graph:
    a big workflow's JSON would be decoded for every row, and nothing here needs it
    (`graph_of` keeps parsed graphs by version id)."""
    return (visible_executions(request).select_related("definition", "version")
            .defer("version__graph"))


def definition_or_404(request, slug: str) -> WorkflowDefinition:
    definition = visible_definitions(request).filter(slug=slug, adhoc=False).first()
    if definition is None:
        raise exceptions.NotFound(f"no workflow {slug!r}")
    return definition


def execution_or_404(request, execution_id) -> Execution:
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise exceptions.NotFound(f"no execution {execution_id!r}") from None
    execution = (visible_executions(request).select_related("version__definition")
                 .defer("version__graph").filter(pk=pk).first())
    if execution is None:
        raise exceptions.NotFound(f"no execution {pk}")
    return execution


def valid(serializer_class, request) -> dict:
    """The request body checked by `serializer_class` (400 listing every problem)."""
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"body": ["must be a JSON object"]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
