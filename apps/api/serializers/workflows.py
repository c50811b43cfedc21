from rest_framework import serializers

from apps.api.serializers.common import ProblemSerializer, StrictJSONField


class WorkflowSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    current_version = serializers.IntegerField(source="current_version.number",
                                               allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WorkflowCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    definition = StrictJSONField()
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    team = serializers.SlugField(required=False, allow_null=True, max_length=100,
                                 help_text="the owning team's slug (you must be its owner); "
                                           "optional when you own exactly one team")

    def validate_slug(self, value):
        if value.startswith("adhoc-"):
            raise serializers.ValidationError("slugs starting with adhoc- are reserved")
        return value


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    workflow = serializers.CharField(source="definition.slug")
    number = serializers.IntegerField()
    checksum = serializers.CharField()
    notes = serializers.CharField(allow_blank=True)
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    current = serializers.BooleanField()


class VersionDetailSerializer(VersionSerializer):
    definition = serializers.JSONField(source="graph")


class WorkflowDetailSerializer(WorkflowSerializer):
    versions = VersionSerializer(many=True)


class VersionCreateSerializer(serializers.Serializer):
    definition = StrictJSONField()
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)


class ValidateSerializer(serializers.Serializer):
    definition = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)


class ChangesSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.CharField())


class DiffSerializer(serializers.Serializer):
    workflow = serializers.CharField()
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    nodes = ChangesSerializer()
    edges = ChangesSerializer(help_text="edge ids are `from->to`")
    fields = serializers.ListField(child=serializers.CharField())
