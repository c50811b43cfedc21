"""Workflows: publish, versions, validate, export, diff."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.pagination import Cursor
from apps.api.serializers import workflows as s
from apps.api.views.base import (
    BraidView,
    definition_or_404,
    require,
    valid,
    visible_definitions,
)
from apps.engine.errors import Conflict
from apps.teams import access
from apps.teams.models import Role, Team
from apps.workflows import services
from apps.workflows.diff import diff_graphs
from apps.workflows.errors import DefinitionInvalid
from apps.workflows.models import WorkflowDefinition, WorkflowVersion


def _owning_team(request, slug: str | None) -> int | None:
    """The team a new workflow goes to: the one named, or the user's only owned team.

    Owners publish for their teams; holders of the global publish permission (the
    "Braid owner" group) for any team, and staff among them also without a team
    (a staff-only workflow).
    """
    user = request.user
    owned = access.team_ids(user, Role.OWNER)
    publisher = user.has_perm(access.ACTION_PERMISSIONS["publish"])
    if not (owned or publisher):
        raise exceptions.PermissionDenied("you own no team: you cannot publish")
    if slug:
        team = Team.objects.filter(slug=slug).first()
        if team is None or not (team.pk in owned or publisher):
            raise exceptions.ValidationError({"team": [f"you own no team {slug!r}"]})
        return team.pk
    if len(owned) == 1:
        return owned[0]
    if publisher and access.sees_all(user):
        return None
    raise exceptions.ValidationError({"team": ["name the owning team"]})


def _versions(definition):
    versions = list(definition.versions.select_related("author").order_by("-number"))
    for v in versions:
        v.current = v.pk == definition.current_version_id
        v.definition = definition
    return versions


def _version_or_404(definition, number) -> WorkflowVersion:
    version = definition.versions.select_related("author").filter(number=number).first()
    if version is None:
        raise exceptions.NotFound(f"workflow {definition.slug!r} has no version {number}")
    version.current = version.pk == definition.current_version_id
    version.definition = definition
    return version


class WorkflowList(BraidView, generics.ListAPIView):
    scopes = {"POST": Scope.ADMIN}
    serializer_class = s.WorkflowSerializer

    class Pagination(Cursor):
        ordering = "slug"

    pagination_class = Pagination

    def get_queryset(self):
        return (visible_definitions(self.request).filter(adhoc=False)
                .select_related("team", "current_version"))

    @extend_schema(summary="List the workflows you can see")
    def get(self, request):
        return self.list(request)

    @extend_schema(summary="Publish a new workflow (version 1)",
                   request=s.WorkflowCreateSerializer, responses={201: s.VersionSerializer})
    def post(self, request):
        data = valid(s.WorkflowCreateSerializer, request)
        team_id = _owning_team(request, data.get("team"))
        if WorkflowDefinition.objects.filter(slug=data["slug"]).exists():
            raise Conflict(f"workflow {data['slug']!r} exists: POST its versions/ to add one")
        version = services.publish_version(
            data["slug"], data["definition"], author=request.user, notes=data.get("notes", ""),
            name=data.get("name") or None, description=data.get("description") or None,
            team_id=team_id)
        version.current = True
        return Response(s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class WorkflowDetail(BraidView):
    @extend_schema(summary="A workflow with its versions", responses=s.WorkflowDetailSerializer)
    def get(self, request, slug):
        definition = definition_or_404(request, slug)
        data = s.WorkflowSerializer(definition).data
        data["versions"] = s.VersionSerializer(_versions(definition), many=True).data
        return Response(data)


class VersionList(BraidView):
    scopes = {"POST": Scope.ADMIN}

    @extend_schema(summary="A workflow's versions, newest first",
                   responses=s.VersionSerializer(many=True))
    def get(self, request, slug):
        return Response(s.VersionSerializer(_versions(definition_or_404(request, slug)),
                                            many=True).data)

    @extend_schema(summary="Publish a new version (the same graph again returns it, 200)",
                   request=s.VersionCreateSerializer,
                   responses={200: s.VersionSerializer, 201: s.VersionSerializer})
    def post(self, request, slug):
        definition = definition_or_404(request, slug)
        require(request, "publish", definition)
        data = valid(s.VersionCreateSerializer, request)
        latest = definition.versions.order_by("-number").values_list("id", flat=True).first()
        version = services.publish_version(slug, data["definition"], author=request.user,
                                           notes=data.get("notes", ""))
        version.current = True
        code = status.HTTP_200_OK if version.pk == latest else status.HTTP_201_CREATED
        return Response(s.VersionSerializer(version).data, status=code)


class VersionDetail(BraidView):
    @extend_schema(
        summary="One version with its definition",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["export"],
                                     description="`export`: only the JSON definition")],
        responses={200: s.VersionDetailSerializer})
    def get(self, request, slug, number):
        version = _version_or_404(definition_or_404(request, slug), number)
        if request.query_params.get("format") == "export":
            return Response(version.graph, headers={
                "Content-Disposition": f'attachment; filename="{slug}-v{number}.json"'})
        return Response(s.VersionDetailSerializer(version).data)


class VersionDiff(BraidView):
    @extend_schema(summary="What changed from version a to version b",
                   responses=s.DiffSerializer)
    def get(self, request, slug, a, b):
        definition = definition_or_404(request, slug)
        old, new = _version_or_404(definition, a), _version_or_404(definition, b)
        diff = diff_graphs(old.graph, new.graph)
        return Response(s.DiffSerializer({"workflow": slug, "a": a, "b": b,
                                          "empty": diff.empty, **diff.as_dict()}).data)


class Validate(BraidView):
    scopes = {"POST": Scope.READ}

    @extend_schema(summary="Check a definition without saving it",
                   description="Returns every problem with where it is (node id, or "
                               "`edge a → b`). 200 whether or not it is valid.",
                   request=s.ValidateSerializer, responses=s.ValidationResultSerializer)
    def post(self, request):
        data = valid(s.ValidateSerializer, request)
        try:
            services.check_definition(data["definition"])
        except DefinitionInvalid as exc:
            return Response({"valid": False, "problems": exc.problems})
        return Response({"valid": True, "problems": []})

