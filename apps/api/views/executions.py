"""Executions: start (optionally waiting for the end), list, detail, events, cancel, signal."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from apps.api.filters import ExecutionFilter
from apps.api.models import Scope
from apps.api.pagination import Cursor
from apps.api.serializers import executions as s
from apps.api.views.base import (
    BraidView,
    definition_or_404,
    execution_or_404,
    executions_with_version,
    require,
    valid,
)
from apps.engine import control, selectors, signaling
from apps.engine.models import ExecutionEvent
from apps.engine.start import StartRequest, start_execution, wait_for
from apps.teams import access
from apps.teams.models import Role, Team
from apps.workflows.models import WorkflowVersion


def _version_or_404(request, version_id: int) -> WorkflowVersion:
    versions = access.visible(WorkflowVersion.objects.select_related("definition"),
                              request.user, "definition__team")
    version = versions.filter(pk=version_id).first()
    if version is None:
        raise exceptions.NotFound(f"no workflow version {version_id}")
    return version


def _adhoc_team(request, slug: str | None) -> int | None:
    """The team an inline definition's run belongs to (see access.starter_team)."""
    wanted = None
    if slug:
        team = Team.objects.filter(slug=slug).first()
        wanted = team.pk if team else -1
    team_id = access.starter_team(request.user, wanted)
    if team_id is None and (slug or not access.sees_all(request.user)):
        raise exceptions.ValidationError({"team": [
            f"you may not start runs for team {slug!r}" if slug
            else "name the team this run belongs to (one you operate)"]})
    if (team_id not in access.team_ids(request.user, Role.OPERATOR)
            and not request.user.has_perm(access.ACTION_PERMISSIONS["execute"])):
        raise exceptions.PermissionDenied("you may not start executions")
    return team_id


def start(request) -> Response:
    """POST /api/v1/executions/ and its seed alias."""
    data = valid(s.ExecutionStartSerializer, request)
    team_id = definition = None
    if "workflow" in data:
        definition = definition_or_404(request, data["workflow"])
        require(request, "execute", definition)
    elif "version_id" in data:
        definition = _version_or_404(request, data["version_id"]).definition
        require(request, "execute", definition)
    else:
        team_id = _adhoc_team(request, data.get("team"))
    execution = start_execution(StartRequest(
        workflow=data.get("workflow"), version_id=data.get("version_id"),
        definition=data.get("definition"), input=data["input"], priority=data["priority"],
        queue=data["queue"], client_id=data["client_id"],
        idempotency_key=data.get("idempotency_key"), deadline_s=data.get("deadline_s"),
        user=request.user, team_id=team_id))
    shown = executions_with_version(request)
    if data.get("idempotency_key"):
        # The key may have been used before, by someone who is not on your teams.
        found = shown.filter(pk=execution.pk).first()
        if found is None:
            raise exceptions.ValidationError({"idempotency_key": ["already used elsewhere"]})
        execution = found
    else:
        # New, on a workflow checked above (or an ad-hoc run of a team you operate):
        # yours to see without reading it back.
        execution.definition = definition or execution.version.definition
    if data["wait"] and not execution.is_terminal:
        wait_for(execution.pk, data["wait"])
        execution = shown.get(pk=execution.pk)
    code = status.HTTP_200_OK if execution.is_terminal else status.HTTP_201_CREATED
    return Response(s.ExecutionSerializer(execution).data, status=code)


START_SCHEMA = extend_schema(
    summary="Start an execution",
    description="Give exactly one of `workflow`, `version_id` or `definition`. With `wait` "
                "(seconds, at most 30) the answer comes when the execution finished (200, "
                "with its output) or when the wait ran out (201, still running). An "
                "idempotency key seen before returns the same execution.",
    request=s.ExecutionStartSerializer,
    responses={200: OpenApiResponse(s.ExecutionSerializer, "finished within `wait`"),
               201: OpenApiResponse(s.ExecutionSerializer, "started (still running)")})


class ExecutionList(BraidView, generics.ListAPIView):
    scopes = {"POST": Scope.EXECUTE}
    serializer_class = s.ExecutionSerializer
    pagination_class = Cursor
    filter_backends = [DjangoFilterBackend]
    filterset_class = ExecutionFilter

    def get_queryset(self):
        return executions_with_version(self.request)

    @extend_schema(summary="List executions (newest first, cursor pages, no total count)")
    def get(self, request):
        return self.list(request)

    @START_SCHEMA
    def post(self, request):
        return start(request)


def detail(request, execution_id) -> Response:
    execution = execution_or_404(request, execution_id)
    return Response(s.ExecutionDetailSerializer(
        selectors.execution_detail(execution)).data)


class ExecutionDetail(BraidView):
    @extend_schema(summary="An execution with its node runs and why it is not moving",
                   responses=s.ExecutionDetailSerializer)
    def get(self, request, execution_id):
        return detail(request, execution_id)


class ExecutionEvents(BraidView):
    query_serializer = s.EventQuerySerializer

    @extend_schema(summary="An execution's events after `after`, in seq order",
                   parameters=[s.EventQuerySerializer], responses=s.EventPageSerializer)
    def get(self, request, execution_id):
        execution = execution_or_404(request, execution_id)
        query = s.EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        rows = list(ExecutionEvent.objects.filter(execution=execution, seq__gt=after)
                    .order_by("seq").values("seq", "type", "payload", "created_at")[:limit + 1])
        events = rows[:limit]
        return Response(s.EventPageSerializer({
            "execution": execution.pk, "events": events,
            "last_seq": events[-1]["seq"] if events else after,
            "more": len(rows) > limit}).data)


def cancel(request, execution_id) -> Response:
    execution = execution_or_404(request, execution_id)
    require(request, "operate", execution)
    data = valid(s.CancelSerializer, request) if request.data else {}
    reason = data.get("reason") or f"cancelled by {request.user.get_username()}"
    execution = control.cancel_execution(execution.pk, reason=reason, user=request.user)
    execution = executions_with_version(request).get(pk=execution.pk)
    return Response(s.ExecutionSerializer(execution).data)


class ExecutionCancel(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="Cancel an execution (409 when it already finished)",
                   request=s.CancelSerializer, responses=s.ExecutionSerializer)
    def post(self, request, execution_id):
        return cancel(request, execution_id)


class ExecutionSignal(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="Send a signal to the nodes waiting for it (409 when none is)",
                   request=s.SignalSerializer, responses=s.SignalResultSerializer)
    def post(self, request, execution_id):
        execution = execution_or_404(request, execution_id)
        require(request, "operate", execution)
        data = valid(s.SignalSerializer, request)
        woken = signaling.send_signal(execution.pk, data["name"], data["payload"],
                                      node_id=data.get("node"),
                                      actor=request.user.get_username())
        return Response({"woken": woken})
