"""Bodies and answers of the release endpoints."""

from rest_framework import serializers

from apps.workflows.models import Strategy
from apps.workflows.routing import KEY_KINDS


class DeploySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    strategy = serializers.ChoiceField(choices=Strategy.values, default=Strategy.IMMEDIATE)
    steps = serializers.ListField(child=serializers.IntegerField(), required=False,
                                  help_text="canary percents, e.g. [5, 25, 50, 100]")
    thresholds = serializers.DictField(required=False,
                                       help_text="canary thresholds over the defaults")
    smoke_inputs = serializers.ListField(child=serializers.DictField(), required=False,
                                         help_text='blue-green: [{"input": {}, "expected": {}}]')
    smoke_timeout_s = serializers.FloatField(required=False, min_value=0.001)
    routing_key = serializers.ChoiceField(choices=KEY_KINDS, required=False)
    routing_expression = serializers.CharField(required=False, allow_blank=True,
                                               max_length=2000)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RollbackSerializer(ActionSerializer):
    to = serializers.IntegerField(required=False, min_value=1,
                                  help_text="the version (default: the previous one)")


class ReleaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    strategy = serializers.CharField()
    state = serializers.CharField()
    candidate_version = serializers.IntegerField()
    stable_version = serializers.IntegerField(allow_null=True)
    steps = serializers.ListField(child=serializers.IntegerField())
    step = serializers.IntegerField(allow_null=True)
    percent = serializers.FloatField()
    routing_key = serializers.CharField()
    routing_expression = serializers.CharField()
    thresholds = serializers.DictField()
    smoke_inputs = serializers.ListField(child=serializers.DictField())
    reason = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    step_started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class VersionFiguresSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    role = serializers.CharField()
    started = serializers.IntegerField()
    finished = serializers.IntegerField()
    failed = serializers.IntegerField()
    failure_rate = serializers.FloatField()
    p95_ms = serializers.FloatField(allow_null=True)


class LogEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    severity = serializers.CharField()
    actor = serializers.CharField()
    reason = serializers.CharField()
    figures = serializers.DictField()
    release = serializers.IntegerField(allow_null=True)


class ReleaseStateSerializer(serializers.Serializer):
    workflow = serializers.CharField()
    current_version = serializers.IntegerField(allow_null=True)
    release = ReleaseSerializer(allow_null=True)
    versions = VersionFiguresSerializer(many=True)
    log = LogEntrySerializer(many=True)
