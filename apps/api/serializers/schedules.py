from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.api.serializers.common import StrictJSONField
from apps.schedules.models import CatchUp, Overlap


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    workflow = serializers.CharField(source="workflow.slug")
    cron = serializers.CharField(allow_blank=True)
    timezone = serializers.CharField()
    run_at = serializers.DateTimeField(allow_null=True)
    input = serializers.JSONField()
    priority = serializers.IntegerField()
    queue = serializers.CharField()
    enabled = serializers.BooleanField()
    overlap = serializers.CharField()
    catch_up = serializers.CharField()
    max_catch_up = serializers.IntegerField()
    grace_s = serializers.IntegerField()
    next_run_at = serializers.DateTimeField(allow_null=True)
    last_fired_at = serializers.DateTimeField(allow_null=True)
    last_execution = serializers.UUIDField(source="last_execution_id", allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ScheduleChangeSerializer(serializers.Serializer):
    """Fields of a schedule you may change (PATCH)."""

    name = serializers.CharField(required=False, max_length=200)
    cron = serializers.CharField(required=False, allow_blank=True, max_length=120)
    timezone = serializers.CharField(required=False, max_length=64)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    input = StrictJSONField(required=False)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=9)
    queue = serializers.CharField(required=False, max_length=32)
    overlap = serializers.ChoiceField(required=False, choices=Overlap.choices)
    catch_up = serializers.ChoiceField(required=False, choices=CatchUp.choices)
    max_catch_up = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    grace_s = serializers.IntegerField(required=False, min_value=1, max_value=10**7)
    enabled = serializers.BooleanField(required=False)


class ScheduleCreateSerializer(ScheduleChangeSerializer):
    workflow = serializers.SlugField(max_length=100)

    def validate(self, attrs):
        if not attrs.get("cron") and not attrs.get("run_at"):
            raise serializers.ValidationError("give a cron, or run_at for a one-shot start")
        if attrs.get("cron") and attrs.get("run_at"):
            raise serializers.ValidationError("give a cron or run_at, not both")
        return attrs


class WindowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    cron = serializers.CharField(allow_blank=True)
    timezone = serializers.CharField()
    duration_s = serializers.SerializerMethodField()
    workflow = serializers.CharField(source="workflow.slug", allow_null=True, default=None)
    reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_s(self, window):
        return window.duration.total_seconds() if window.duration else None


class WindowChangeSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    cron = serializers.CharField(required=False, allow_blank=True, max_length=120)
    timezone = serializers.CharField(required=False, max_length=64)
    duration_s = serializers.FloatField(required=False, allow_null=True, min_value=1,
                                        max_value=366 * 86400)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class WindowCreateSerializer(WindowChangeSerializer):
    name = serializers.CharField(max_length=200)
    workflow = serializers.SlugField(required=False, allow_null=True, max_length=100,
                                     help_text="empty: every schedule (staff only)")
