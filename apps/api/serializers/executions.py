from django.conf import settings
from rest_framework import serializers

from apps.api.serializers.common import StrictJSONField

MAX_WAIT_S = 30.0


class ExecutionStartSerializer(serializers.Serializer):
    workflow = serializers.SlugField(required=False, max_length=100,
                                     help_text="a published workflow's slug (runs its "
                                               "current version)")
    version_id = serializers.IntegerField(required=False, min_value=1)
    definition = StrictJSONField(required=False, help_text="an inline definition")
    team = serializers.SlugField(required=False, max_length=100,
                                 help_text="with `definition`: the team the run belongs to "
                                           "(optional when you operate exactly one team)")
    input = StrictJSONField(required=False, default=dict)
    queue = serializers.CharField(required=False, default="default", max_length=32)
    priority = serializers.IntegerField(required=False, default=5, min_value=0, max_value=9)
    client_id = serializers.CharField(required=False, default="", allow_blank=True,
                                      max_length=128)
    idempotency_key = serializers.CharField(required=False, allow_null=True, max_length=200)
    deadline_s = serializers.FloatField(required=False, allow_null=True, min_value=0.001,
                                        max_value=365 * 86400)
    wait = serializers.FloatField(required=False, default=0, min_value=0,
                                  max_value=MAX_WAIT_S,
                                  help_text="seconds to wait for the end (at most 30)")

    def validate_queue(self, value):
        if value not in settings.BRAID_QUEUES:
            raise serializers.ValidationError(
                f"no queue {value!r} (queues: {', '.join(settings.BRAID_QUEUES)})")
        return value

    def validate(self, attrs):
        given = [k for k in ("workflow", "version_id", "definition") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                "give exactly one of workflow, version_id or definition")
        return attrs


class ProgressSerializer(serializers.Serializer):
    current_nodes = serializers.ListField(child=serializers.CharField())
    completed = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField()


class ModelProgressSerializer(ProgressSerializer):
    completed = serializers.IntegerField(source="completed_nodes")
    total = serializers.IntegerField(source="total_nodes")


class ExecutionSerializer(serializers.Serializer):
    """An execution without its node runs (lists, start)."""

    id = serializers.UUIDField()
    workflow = serializers.CharField(source="definition.slug")
    version = serializers.IntegerField(source="version.number")
    version_id = serializers.IntegerField()
    status = serializers.CharField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    priority = serializers.IntegerField()
    queue = serializers.CharField()
    client_id = serializers.CharField(allow_blank=True)
    progress = ModelProgressSerializer(source="*")
    last_seq = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class NodeRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    node_id = serializers.CharField()
    attempt = serializers.IntegerField()
    status = serializers.CharField()
    compensation = serializers.BooleanField()
    output = serializers.JSONField(allow_null=True)
    error_class = serializers.CharField(allow_blank=True)
    error_message = serializers.CharField(allow_blank=True)
    retryable = serializers.BooleanField(allow_null=True)
    worker = serializers.CharField(allow_blank=True)
    created_at = serializers.CharField(allow_null=True)
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="queued, queue_paused, backoff, rate_limited, "
                                           "leased, lease_expired, timer, awaiting_approval, "
                                           "awaiting_signal, *_limit, pool_full…")
    node = serializers.CharField(allow_blank=True)
    message = serializers.CharField()
    until = serializers.CharField(allow_null=True)


class ExecutionDetailSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workflow = serializers.CharField()
    workflow_name = serializers.CharField()
    adhoc = serializers.BooleanField()
    version = serializers.IntegerField()
    version_id = serializers.IntegerField()
    status = serializers.CharField()
    input = serializers.JSONField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    priority = serializers.IntegerField()
    queue = serializers.CharField()
    client_id = serializers.CharField(allow_blank=True)
    idempotency_key = serializers.CharField(allow_null=True)
    deadline = serializers.CharField(allow_null=True)
    progress = ProgressSerializer()
    created_at = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    last_seq = serializers.IntegerField()
    node_runs = NodeRunSerializer(many=True)
    why = ReasonSerializer(many=True, help_text="why it is not moving: one reason per "
                                                "unfinished node run")


class EventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    type = serializers.CharField()
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()


class EventPageSerializer(serializers.Serializer):
    execution = serializers.UUIDField()
    events = EventSerializer(many=True)
    last_seq = serializers.IntegerField(help_text="pass it as `after` to get the next ones")
    more = serializers.BooleanField(help_text="true when more events follow")


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=0, min_value=0,
                                     max_value=2**31 - 1)
    limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=1000)


class SignalSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    payload = StrictJSONField(required=False, default=dict)
    node = serializers.CharField(required=False, max_length=64,
                                 help_text="only this node's wait")


class SignalResultSerializer(serializers.Serializer):
    woken = serializers.ListField(child=serializers.CharField())


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, max_length=500, allow_blank=True)
