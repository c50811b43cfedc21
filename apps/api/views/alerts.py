"""The operator alert inbox over HTTP: list, detail, acknowledge, assign, resolve,
comment; silences; and the resource monitor's figures (staff)."""

from django.contrib.auth import get_user_model
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.pagination import Cursor
from apps.api.permissions import IsStaff
from apps.api.serializers import interventions as s
from apps.api.views.base import BraidView, valid
from apps.api.views.interventions import _body
from apps.operations import resources, services
from apps.operations.models import Alert, AlertState, Severity, Silence
from apps.teams import access


class AlertCursor(Cursor):
    ordering = ("-last_seen", "-id")


class SilenceCursor(Cursor):
    ordering = ("-until", "-id")


class AlertFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=AlertState.choices)
    severity = filters.ChoiceFilter(choices=Severity.choices)
    rule = filters.CharFilter()
    workflow = filters.CharFilter(field_name="workflow__slug")

    class Meta:
        model = Alert
        fields = []


def visible_alerts(request):
    """A team's alerts are those of its workflows; alerts about queues, hosts or the
    database concern the whole platform and are for staff."""
    return access.visible(Alert.objects.select_related("workflow", "assignee"), request.user,
                          "workflow__team")


def alert_or_404(request, alert_id: int) -> Alert:
    alert = visible_alerts(request).filter(pk=alert_id).first()
    if alert is None:
        raise exceptions.NotFound(f"no alert {alert_id}")
    return alert


def _may_handle(request, alert: Alert) -> None:
    allowed = request.user.has_perm("operations.handle_alert") or (
        alert.workflow is not None and access.may(request.user, "operate", alert.workflow))
    if not allowed:
        raise exceptions.PermissionDenied("your role does not allow handling alerts")


class AlertList(BraidView, generics.ListAPIView):
    serializer_class = s.AlertSerializer
    pagination_class = AlertCursor
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = AlertFilter

    def get_queryset(self):
        return visible_alerts(self.request).order_by("-last_seen", "-id")

    @extend_schema(summary="Alerts, newest first (filters: state, severity, rule, workflow)")
    def get(self, request):
        return self.list(request)


class AlertDetail(BraidView):
    @extend_schema(summary="One alert with its history", responses=s.AlertDetailSerializer)
    def get(self, request, alert_id):
        return Response(s.AlertDetailSerializer(alert_or_404(request, alert_id)).data)


class _AlertAction(BraidView):
    scopes = {"POST": Scope.OPERATE}
    body = s.NoteSerializer  # each subclass sets its body and its `act` (the service)

    def post(self, request, alert_id):
        alert = alert_or_404(request, alert_id)
        _may_handle(request, alert)
        data = _body(self.body, request)
        self.act(alert, request.user, data)
        return Response(s.AlertDetailSerializer(alert_or_404(request, alert_id)).data)


class AlertAcknowledge(_AlertAction):
    @extend_schema(summary="Acknowledge an alert (409 when resolved)", request=s.NoteSerializer,
                   responses=s.AlertDetailSerializer)
    def post(self, request, alert_id):
        return super().post(request, alert_id)

    def act(self, alert, user, data):
        services.acknowledge(alert, user, data.get("note", ""))


class AlertResolve(_AlertAction):
    @extend_schema(summary="Resolve an alert (409 when resolved)", request=s.NoteSerializer,
                   responses=s.AlertDetailSerializer)
    def post(self, request, alert_id):
        return super().post(request, alert_id)

    def act(self, alert, user, data):
        services.resolve(alert, user, data.get("note", ""))


class AlertComment(_AlertAction):
    body = s.CommentSerializer

    @extend_schema(summary="Comment on an alert", request=s.CommentSerializer,
                   responses=s.AlertDetailSerializer)
    def post(self, request, alert_id):
        return super().post(request, alert_id)

    def act(self, alert, user, data):
        services.comment(alert, user, data["text"])


class AlertAssign(_AlertAction):
    body = s.AssignSerializer

    @extend_schema(summary="Assign an alert to a user (null: unassign)",
                   request=s.AssignSerializer, responses=s.AlertDetailSerializer)
    def post(self, request, alert_id):
        return super().post(request, alert_id)

    def act(self, alert, user, data):
        assignee = None
        if data.get("user"):
            assignee = get_user_model().objects.filter(username=data["user"]).first()
            if assignee is None:
                raise exceptions.ValidationError({"user": [f"no user {data['user']!r}"]})
        services.assign(alert, user, assignee)


class SilenceList(BraidView, generics.ListAPIView):
    scopes = {"POST": Scope.OPERATE}
    serializer_class = s.SilenceSerializer
    pagination_class = SilenceCursor

    def get_queryset(self):
        return Silence.objects.order_by("-until", "-id")

    @extend_schema(summary="Silences (newest end first)")
    def get(self, request):
        return self.list(request)

    @extend_schema(summary="Mute a rule's notifications (optionally one subject) until a time",
                   request=s.SilenceSerializer, responses={201: s.SilenceSerializer})
    def post(self, request):
        if not request.user.has_perm("operations.add_silence"):
            raise exceptions.PermissionDenied("your role does not allow silences")
        data = valid(s.SilenceSerializer, request)
        silence = services.silence(data["rule"], data["until"], request.user,
                                   subject_id=data["subject_id"], reason=data["reason"])
        return Response(s.SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)


class _StaffFigures(BraidView):
    permission_classes = BraidView.permission_classes + [IsStaff]


class ResourceUsage(_StaffFigures):
    @extend_schema(summary="Worker hosts' CPU, memory and processes (staff)",
                   responses={200: dict})
    def get(self, request):
        return Response(resources.resource_usage())


class ExecutorStats(_StaffFigures):
    @extend_schema(summary="Worker processes' threads, pool processes and event-loop slots "
                           "(staff)", responses={200: dict})
    def get(self, request):
        return Response(resources.executor_stats())


class DbPoolStats(_StaffFigures):
    @extend_schema(summary="Database connections in use against the maximum (staff)",
                   responses={200: dict})
    def get(self, request):
        return Response(resources.db_pool_stats())
