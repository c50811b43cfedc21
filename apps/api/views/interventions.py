"""An operator steps in over HTTP: retry, skip, resume, re-run, compensate, pause,
unpause, mark failed, bulk cancel; and the diagnosis. Each calls the same service
as the admin's buttons and the CLI (apps/operations/interventions.py); a state
that does not allow the step answers 409 with the reason."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.api.filters import ExecutionFilter
from apps.api.models import Scope
from apps.api.serializers import executions as es
from apps.api.serializers import interventions as s
from apps.api.views.base import (
    BraidView,
    execution_or_404,
    executions_with_version,
    require,
    valid,
    visible_executions,
)
from apps.engine import control
from apps.engine.errors import Conflict, NotFound
from apps.engine.statuses import TERMINAL_EXECUTION
from apps.operations import interventions
from apps.operations.diagnose import diagnose


def _answer(request, execution, code=status.HTTP_200_OK) -> Response:
    execution = executions_with_version(request).get(pk=execution.pk)
    return Response(es.ExecutionSerializer(execution).data, status=code)


def _step(summary: str, body=s.ReasonSerializer):
    return extend_schema(summary=summary, request=body,
                         responses={200: es.ExecutionSerializer,
                                    409: OpenApiResponse(description="the state does not "
                                                                     "allow it")})


class _Intervention(BraidView):
    """POST: check visibility (404) and role (403), validate the body, call the service."""

    scopes = {"POST": Scope.OPERATE}
    body = s.ReasonSerializer  # each subclass sets its body and its `call` (the service)

    def post(self, request, execution_id):
        execution = execution_or_404(request, execution_id)
        require(request, "operate", execution)
        return _answer(request, self.call(execution.pk, request.user, _body(self.body, request)))


def _body(serializer_class, request) -> dict:
    """The validated body; an empty body means the defaults (a reason is optional)."""
    if not request.data:
        serializer = serializer_class(data={})
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
    return valid(serializer_class, request)


class Retry(_Intervention):
    body = s.RetrySerializer

    @_step("Retry a failed node (optionally with its own input)", s.RetrySerializer)
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.retry_node(execution_id, data["node"], user=user,
                                        reason=data["reason"], node_input=data.get("input"))


class Skip(_Intervention):
    body = s.SkipSerializer

    @_step("Skip a node with a supplied output; downstream runs as if it had produced it",
           s.SkipSerializer)
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.skip_node(execution_id, data["node"], data["output"], user=user,
                                       reason=data["reason"])


class Resume(_Intervention):
    @_step("Resume a failed execution from where it stopped")
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.resume(execution_id, user=user, reason=data["reason"])


class Rerun(_Intervention):
    body = s.RerunSerializer

    @extend_schema(summary="Re-run from a node: a new execution on the pinned version that "
                           "reuses the outputs before it", request=s.RerunSerializer,
                   responses={201: es.ExecutionSerializer, 409: OpenApiResponse(
                       description="the state does not allow it")})
    def post(self, request, execution_id):
        execution = execution_or_404(request, execution_id)
        require(request, "operate", execution)
        data = valid(s.RerunSerializer, request)
        rerun = interventions.rerun_from(execution.pk, data["from_node"], user=request.user,
                                         reason=data["reason"])
        return _answer(request, rerun, status.HTTP_201_CREATED)


class Compensate(_Intervention):
    @_step("Compensate a failed execution now (undo its completed steps)")
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.compensate(execution_id, user=user, reason=data["reason"])


class Pause(_Intervention):
    @_step("Pause an execution: its ready work is held, holding no worker")
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.pause(execution_id, user=user, reason=data["reason"])


class Unpause(_Intervention):
    @_step("Unpause an execution")
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.unpause(execution_id, user=user, reason=data["reason"])


class MarkFailed(_Intervention):
    @_step("Mark an unfinished execution failed")
    def post(self, request, execution_id):
        return super().post(request, execution_id)

    def call(self, execution_id, user, data):
        return interventions.mark_failed(execution_id, user=user, reason=data["reason"])


class Diagnosis(BraidView):
    @extend_schema(summary="Why an execution is stuck or failed, and what to try",
                   responses=s.DiagnosisSerializer)
    def get(self, request, execution_id):
        execution = execution_or_404(request, execution_id)
        return Response(s.DiagnosisSerializer(diagnose(execution.pk)).data)


class BulkCancel(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="Cancel the unfinished executions a filter matches (at most "
                           "`limit` a call) that you may operate",
                   request=s.BulkCancelSerializer, responses=s.BulkCancelResultSerializer)
    def post(self, request):
        data = valid(s.BulkCancelSerializer, request)
        query = {k: v for k, v in data.items() if k in ExecutionFilter.base_filters}
        matched = ExecutionFilter(query, queryset=visible_executions(request).exclude(
            status__in=sorted(TERMINAL_EXECUTION))).qs.order_by("created_at")
        ids = list(matched.values_list("pk", flat=True)[:data["limit"] + 1])
        cancelled = skipped = 0
        reason = data["reason"] or f"cancelled in bulk by {request.user.get_username()}"
        for execution in visible_executions(request).filter(pk__in=ids[:data["limit"]]):
            require(request, "operate", execution)
            try:
                control.cancel_execution(execution.pk, reason=reason, user=request.user)
                cancelled += 1
            except (Conflict, NotFound):  # finished (or pruned) since it was matched
                skipped += 1
        return Response({"cancelled": cancelled, "skipped": skipped,
                         "more": len(ids) > data["limit"]})
