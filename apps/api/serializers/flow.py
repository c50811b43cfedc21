from rest_framework import serializers

from apps.engine.models import RateLimit


class LimitSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    workflow = serializers.SlugField(source="workflow.slug", allow_null=True, required=False,
                                     default=None, max_length=100,
                                     help_text="empty: a global limit on all executions")
    key = serializers.CharField(required=False, default="", allow_blank=True, max_length=500,
                                help_text="CEL over the input; one slot pool per value")
    max_running = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class LimitChangeSerializer(serializers.Serializer):
    key = serializers.CharField(required=False, allow_blank=True, max_length=500)
    max_running = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


class PoolSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    size = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    description = serializers.CharField(required=False, default="", allow_blank=True,
                                        max_length=200)


class PoolChangeSerializer(serializers.Serializer):
    size = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)


class RateLimitSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    scope = serializers.ChoiceField(choices=RateLimit.SCOPES)
    target = serializers.CharField(max_length=100)
    rate = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    period_s = serializers.FloatField(required=False, default=60.0, min_value=0.001,
                                      max_value=366 * 86400)
    burst = serializers.IntegerField(required=False, allow_null=True, default=None,
                                     min_value=1, max_value=2**31 - 1)


class RateLimitChangeSerializer(serializers.Serializer):
    rate = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    period_s = serializers.FloatField(required=False, min_value=0.001, max_value=366 * 86400)
    burst = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                     max_value=2**31 - 1)
