"""Approvals, queues and statistics."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.permissions import IsStaff, MayPauseQueues
from apps.api.serializers import operations as s
from apps.api.views.base import BraidView, require, valid, visible_executions
from apps.engine import queues, signaling
from apps.engine.models import NodeRun
from apps.teams import access
from apps.workflows.specs import graph_for

STATS_WINDOW_S = 3600.0


def visible_approvals(request):
    return access.visible(signaling.pending_approvals(), request.user,
                          "execution__definition__team")


def _approval(run) -> dict:
    try:
        config = graph_for(run.execution.version_id).nodes[run.node_id].config
    except KeyError:
        config = {}
    return {"id": run.pk, "execution": run.execution_id,
            "workflow": run.execution.definition.slug, "node": run.node_id,
            "title": config.get("title", ""), "form": config.get("form"),
            "waiting_since": run.started_at or run.created_at, "times_out": run.wake_at}


class ApprovalList(BraidView):
    @extend_schema(summary="Approvals waiting for a decision, newest first (at most 500)",
                   responses=s.ApprovalSerializer(many=True))
    def get(self, request):
        runs = visible_approvals(request)[:500]
        return Response(s.ApprovalSerializer([_approval(r) for r in runs], many=True).data)


class ApprovalDecide(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="Approve or reject a waiting approval",
                   request=s.DecisionSerializer, responses=s.DecisionResultSerializer)
    def post(self, request, approval_id):
        run = (access.visible(NodeRun.objects.select_related("execution__definition"),
                              request.user, "execution__definition__team")
               .filter(pk=approval_id).first())
        if run is None:
            raise exceptions.NotFound(f"no approval {approval_id}")
        require(request, "decide", run.execution)
        data = valid(s.DecisionSerializer, request)
        signaling.decide_approval(run.execution_id, run.node_id,
                                  approve=data["decision"] == "approve", user=request.user,
                                  note=data["note"], form=data["values"])
        return Response({"execution": run.execution_id, "node": run.node_id,
                         "decision": data["decision"]})


class QueueList(BraidView):
    @extend_schema(summary="Queues with their statistics (last 5 minutes)",
                   responses=s.QueueSerializer(many=True))
    def get(self, request):
        return Response(s.QueueSerializer(queues.queue_stats(), many=True).data)


class QueuePause(BraidView):
    scopes = {"POST": Scope.OPERATE}
    permission_classes = BraidView.permission_classes + [MayPauseQueues]
    paused = True

    @extend_schema(summary="Pause a queue: its work waits, nothing is lost (engine.pause_queue)",
                   request=None, responses=s.QueueStateSerializer)
    def post(self, request, name):
        action = queues.pause_queue if self.paused else queues.resume_queue
        return Response(s.QueueStateSerializer(action(name, user=request.user)).data)


class QueueResume(QueuePause):
    paused = False

    @extend_schema(summary="Resume a paused queue (engine.pause_queue)", request=None,
                   responses=s.QueueStateSerializer)
    def post(self, request, name):
        return super().post(request, name)


def stats_for(request) -> dict:
    """Execution counts by status for what the caller can see, plus queues."""
    executions = visible_executions(request)
    since = timezone.now() - timedelta(seconds=STATS_WINDOW_S)
    active = dict(executions.filter(status__in=["pending", "running", "waiting",
                                                "compensating"])
                  .values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    finished = dict(executions.filter(finished_at__gte=since).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
    return {"executions": active, "window_s": STATS_WINDOW_S,
            "finished_in_window": finished,
            "pending_approvals": visible_approvals(request).count(),
            "queues": queues.queue_stats()}


class SystemStats(BraidView):
    permission_classes = BraidView.permission_classes + [IsStaff]

    @extend_schema(summary="Platform statistics (staff): active executions by status, "
                           "finished in the last hour, approvals, queues",
                   responses=s.StatsSerializer)
    def get(self, request):
        return Response(s.StatsSerializer(stats_for(request)).data)
