from rest_framework import serializers

from apps.api.serializers.common import StrictJSONField
from apps.api.serializers.executions import ExecutionSerializer


class ApprovalSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the waiting node run's id")
    execution = serializers.UUIDField()
    workflow = serializers.CharField()
    node = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    form = serializers.JSONField(allow_null=True, help_text="JSON Schema of the form's values")
    waiting_since = serializers.DateTimeField(allow_null=True)
    times_out = serializers.DateTimeField(allow_null=True)


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    note = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)
    values = StrictJSONField(required=False, default=dict,
                             help_text="the approval form's values")


class DecisionResultSerializer(serializers.Serializer):
    execution = serializers.UUIDField()
    node = serializers.CharField()
    decision = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    queue = serializers.CharField()
    weight = serializers.IntegerField()
    paused = serializers.BooleanField()
    ready = serializers.IntegerField()
    delayed = serializers.IntegerField()
    running = serializers.IntegerField()
    waiting = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    oldest_ready_s = serializers.FloatField(allow_null=True)
    claims_per_s = serializers.FloatField()
    window_s = serializers.FloatField()


class QueueStateSerializer(serializers.Serializer):
    queue = serializers.CharField(source="name")
    paused = serializers.BooleanField()
    changed_by = serializers.CharField(allow_blank=True)


class StatsSerializer(serializers.Serializer):
    executions = serializers.DictField(child=serializers.IntegerField(),
                                       help_text="executions by status")
    window_s = serializers.FloatField()
    finished_in_window = serializers.DictField(child=serializers.IntegerField())
    pending_approvals = serializers.IntegerField()
    queues = QueueSerializer(many=True)


class ReconnectSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    executions = ExecutionSerializer(many=True)
