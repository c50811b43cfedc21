from rest_framework import serializers


class ProblemSerializer(serializers.Serializer):
    where = serializers.CharField(allow_blank=True, allow_null=True,
                                  help_text="field, node or edge path")
    node = serializers.CharField(allow_null=True, required=False,
                                 help_text="the node id, for a definition's problem")
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable: invalid, invalid_definition, "
                                           "invalid_input, not_found, conflict, too_large, "
                                           "not_authenticated, permission_denied, throttled…")
    message = serializers.CharField()
    details = ProblemSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class StrictJSONField(serializers.JSONField):
    """A JSON object (dict), not any JSON value."""

    default_error_messages = {"not_object": "must be a JSON object"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value
