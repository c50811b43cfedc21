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


class FieldChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="dotted path, e.g. config.output.step")
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)
    present = serializers.CharField(help_text="both, old (removed) or new (added)")


class NodeChangeSerializer(serializers.Serializer):
    id = serializers.CharField()
    changes = FieldChangeSerializer(many=True)


class DiffSerializer(serializers.Serializer):
    workflow = serializers.CharField()
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    empty = serializers.BooleanField()
    nodes_added = serializers.ListField(child=serializers.JSONField())
    nodes_removed = serializers.ListField(child=serializers.JSONField())
    nodes_changed = NodeChangeSerializer(many=True)
    edges_added = serializers.ListField(child=serializers.JSONField(),
                                        help_text="edges are matched on from, to and when")
    edges_removed = serializers.ListField(child=serializers.JSONField())
    workflow_changed = FieldChangeSerializer(many=True)
