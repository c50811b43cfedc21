"""Schedules and maintenance windows: CRUD through apps.schedules.services."""

from datetime import timedelta

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.pagination import Cursor
from apps.api.serializers import schedules as s
from apps.api.views.base import BraidView, definition_or_404, require, valid
from apps.schedules import services
from apps.schedules.models import MaintenanceWindow, Schedule
from apps.teams import access

WRITE = {"POST": Scope.ADMIN, "PATCH": Scope.ADMIN, "DELETE": Scope.ADMIN}


class ByIdPagination(Cursor):
    ordering = "id"


def visible_schedules(request):
    return access.visible(Schedule.objects.select_related("workflow"), request.user,
                          "workflow__team")


def schedule_or_404(request, pk) -> Schedule:
    schedule = visible_schedules(request).filter(pk=pk).first()
    if schedule is None:
        raise exceptions.NotFound(f"no schedule {pk}")
    return schedule


class ScheduleList(BraidView, generics.ListAPIView):
    scopes = WRITE
    pagination_class = ByIdPagination
    serializer_class = s.ScheduleSerializer

    def get_queryset(self):
        return visible_schedules(self.request)

    @extend_schema(summary="List schedules")
    def get(self, request):
        return self.list(request)

    @extend_schema(summary="Create a cron schedule, or a one-shot start at run_at",
                   request=s.ScheduleCreateSerializer, responses={201: s.ScheduleSerializer})
    def post(self, request):
        data = valid(s.ScheduleCreateSerializer, request)
        definition = definition_or_404(request, data.pop("workflow"))
        require(request, "schedule", definition)
        enabled = data.pop("enabled", True)
        if data.get("cron"):
            tz = data.pop("timezone", "UTC")
            data.pop("run_at", None)
            schedule = services.create_schedule(definition, data.pop("cron"),
                                                timezone_name=tz, **data)
        else:
            schedule = services.schedule_once(
                definition, data["run_at"], data.get("input"), name=data.get("name", ""),
                priority=data.get("priority", 5), queue=data.get("queue", "scheduled"),
                catch_up=data.get("catch_up", "last"))
        if not enabled:
            schedule = services.pause_schedule(schedule)
        return Response(s.ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetail(BraidView):
    scopes = WRITE

    @extend_schema(summary="One schedule", responses=s.ScheduleSerializer)
    def get(self, request, pk):
        return Response(s.ScheduleSerializer(schedule_or_404(request, pk)).data)

    @extend_schema(summary="Change a schedule (enabled: pause or resume it)",
                   request=s.ScheduleChangeSerializer, responses=s.ScheduleSerializer)
    def patch(self, request, pk):
        schedule = schedule_or_404(request, pk)
        require(request, "schedule", schedule)
        data = valid(s.ScheduleChangeSerializer, request)
        enabled = data.pop("enabled", None)
        if data:
            schedule = services.update_schedule(schedule, **data)
        if enabled is False:
            schedule = services.pause_schedule(schedule)
        elif enabled is True:
            schedule = services.resume_schedule(schedule)
        return Response(s.ScheduleSerializer(schedule).data)

    @extend_schema(summary="Delete a schedule", responses={204: None})
    def delete(self, request, pk):
        schedule = schedule_or_404(request, pk)
        require(request, "schedule", schedule)
        services.delete_schedule(schedule)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- maintenance windows ----------------------------------------------------------------


def visible_windows(request):
    rows = MaintenanceWindow.objects.select_related("workflow")
    if access.sees_all(request.user):
        return rows
    return rows.filter(Q(workflow__isnull=True)
                       | Q(workflow__team__in=access.team_ids(request.user)))


def window_or_404(request, pk) -> MaintenanceWindow:
    window = visible_windows(request).filter(pk=pk).first()
    if window is None:
        raise exceptions.NotFound(f"no maintenance window {pk}")
    return window


def _may_edit(request, window_workflow) -> None:
    """A workflow's window needs the schedule right on it; a global one the global right."""
    if window_workflow is None:
        if not request.user.has_perm("schedules.change_maintenancewindow"):
            raise exceptions.PermissionDenied("windows for every workflow need the "
                                              "maintenance-window permission (owners' group)")
    else:
        require(request, "schedule", window_workflow)


def _window_fields(data: dict) -> dict:
    if "duration_s" in data:
        seconds = data.pop("duration_s")
        data["duration"] = None if seconds is None else timedelta(seconds=seconds)
    return data


class WindowList(BraidView, generics.ListAPIView):
    scopes = WRITE
    pagination_class = ByIdPagination
    serializer_class = s.WindowSerializer

    def get_queryset(self):
        return visible_windows(self.request)

    @extend_schema(summary="List maintenance windows (yours and the global ones)")
    def get(self, request):
        return self.list(request)

    @extend_schema(summary="Create a maintenance window", request=s.WindowCreateSerializer,
                   responses={201: s.WindowSerializer})
    def post(self, request):
        data = valid(s.WindowCreateSerializer, request)
        slug = data.pop("workflow", None)
        workflow = definition_or_404(request, slug) if slug else None
        _may_edit(request, workflow)
        window = services.save_window(workflow=workflow, **_window_fields(data))
        return Response(s.WindowSerializer(window).data,
                        status=status.HTTP_201_CREATED)


class WindowDetail(BraidView):
    scopes = WRITE

    @extend_schema(summary="One maintenance window", responses=s.WindowSerializer)
    def get(self, request, pk):
        return Response(s.WindowSerializer(window_or_404(request, pk)).data)

    @extend_schema(summary="Change a maintenance window", request=s.WindowChangeSerializer,
                   responses=s.WindowSerializer)
    def patch(self, request, pk):
        window = window_or_404(request, pk)
        _may_edit(request, window.workflow)
        data = valid(s.WindowChangeSerializer, request)
        window = services.save_window(window, **_window_fields(data))
        return Response(s.WindowSerializer(window).data)

    @extend_schema(summary="Delete a maintenance window", responses={204: None})
    def delete(self, request, pk):
        window = window_or_404(request, pk)
        _may_edit(request, window.workflow)
        services.delete_window(window)
        return Response(status=status.HTTP_204_NO_CONTENT)
