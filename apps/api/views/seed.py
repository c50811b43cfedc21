"""The seed's short forms: thin aliases of the v1 endpoints."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.serializers import executions as es
from apps.api.serializers import operations as os_
from apps.api.views import executions
from apps.api.views.base import BraidView, executions_with_version
from apps.api.views.operations import stats_for
from apps.engine.models import TERMINAL_EXECUTION

TAG = ["seed aliases"]


class Execute(BraidView):
    scopes = {"POST": Scope.EXECUTE}

    @extend_schema(tags=TAG, summary="Alias of POST /api/v1/executions/",
                   request=es.ExecutionStartSerializer,
                   responses={200: es.ExecutionSerializer, 201: es.ExecutionSerializer})
    def post(self, request):
        return executions.start(request)


class Status(BraidView):
    @extend_schema(tags=TAG, summary="Alias of GET /api/v1/executions/{id}/",
                   responses=es.ExecutionDetailSerializer)
    def get(self, request, execution_id):
        return executions.detail(request, execution_id)


class Cancel(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(tags=TAG, summary="Alias of POST /api/v1/executions/{id}/cancel/",
                   request=es.CancelSerializer, responses=es.ExecutionSerializer)
    def post(self, request, execution_id):
        return executions.cancel(request, execution_id)


class Reconnect(BraidView):
    @extend_schema(tags=TAG, summary="A client's unfinished executions with their progress",
                   description="Follow each one live on ws/executions/{id}/ from its "
                               "`last_seq`.", responses=os_.ReconnectSerializer)
    def get(self, request, client_id):
        rows = (executions_with_version(request)
                .filter(client_id=client_id).exclude(status__in=TERMINAL_EXECUTION)
                .order_by("-created_at")[:500])
        return Response({"client_id": client_id,
                         "executions": es.ExecutionSerializer(rows, many=True).data})


class Stats(BraidView):
    @extend_schema(tags=TAG, summary="Execution and queue statistics of what you can see",
                   responses=os_.StatsSerializer)
    def get(self, request):
        return Response(os_.StatsSerializer(stats_for(request)).data)
