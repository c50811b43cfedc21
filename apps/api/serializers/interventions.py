"""Bodies of the operator's interventions, alert actions and silences."""

from rest_framework import serializers

from apps.api.serializers.common import StrictJSONField


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500,
                                   help_text="kept in the execution's audit trail")


class RetrySerializer(ReasonSerializer):
    node = serializers.CharField(max_length=64)
    input = StrictJSONField(required=False, allow_null=True, default=None,
                            help_text="this attempt's own input instead of the execution's")


class SkipSerializer(ReasonSerializer):
    node = serializers.CharField(max_length=64)
    output = serializers.JSONField(help_text="the node's output (checked against its "
                                             "output_schema, if it declares one)")


class RerunSerializer(ReasonSerializer):
    from_node = serializers.CharField(max_length=64)


class DiagnosisSerializer(serializers.Serializer):
    execution = serializers.CharField()
    workflow = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.JSONField(allow_null=True)
    stuck_nodes = serializers.ListField(child=serializers.DictField())
    node_errors = serializers.ListField(child=serializers.DictField())
    recent_events = serializers.ListField(child=serializers.DictField())
    why = serializers.ListField(child=serializers.DictField())
    workers = serializers.ListField(child=serializers.DictField())
    suggestions = serializers.ListField(child=serializers.CharField())


class BulkCancelSerializer(serializers.Serializer):
    status = serializers.ChoiceField(required=False, choices=["pending", "running", "waiting"])
    workflow = serializers.SlugField(required=False, max_length=100)
    queue = serializers.CharField(required=False, max_length=32)
    client_id = serializers.CharField(required=False, max_length=128)
    created_before = serializers.DateTimeField(required=False)
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=1000)

    def validate(self, attrs):
        if not any(k in attrs for k in ("status", "workflow", "queue", "client_id",
                                        "created_before")):
            raise serializers.ValidationError(
                "give at least one filter: status, workflow, queue, client_id or "
                "created_before")
        return attrs


class BulkCancelResultSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="finished meanwhile")
    more = serializers.BooleanField(help_text="more matched than `limit`: call again")


class AlertNoteSerializer(serializers.Serializer):
    author = serializers.CharField()
    action = serializers.CharField()
    text = serializers.CharField()
    at = serializers.DateTimeField()


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    severity = serializers.CharField()
    state = serializers.CharField()
    title = serializers.CharField()
    details = serializers.JSONField()
    subject_kind = serializers.CharField()
    subject_id = serializers.CharField()
    workflow = serializers.CharField(source="workflow.slug", allow_null=True, default=None)
    execution = serializers.UUIDField(source="execution_id", allow_null=True)
    occurrences = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField()
    assignee = serializers.CharField(source="assignee.username", allow_null=True, default=None)


class AlertDetailSerializer(AlertSerializer):
    notes = AlertNoteSerializer(many=True, source="notes.all")


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)


class CommentSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=5000)


class AssignSerializer(serializers.Serializer):
    user = serializers.CharField(allow_null=True, max_length=150,
                                 help_text="a username, or null to unassign")


class SilenceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    rule = serializers.CharField(max_length=48)
    subject_id = serializers.CharField(required=False, default="", allow_blank=True,
                                       max_length=128)
    until = serializers.DateTimeField()
    reason = serializers.CharField(required=False, default="", allow_blank=True,
                                   max_length=300)
    created_by = serializers.CharField(read_only=True)
