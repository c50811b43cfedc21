"""Releases of a workflow: deploy, the current release, history, promote, abort, rollback.

Thin: a serializer checks the body, `apps.engine.rollout` does the work and
checks the caller's permission (apps/workflows/permissions.py: owners deploy and
promote, operators abort and roll back, viewers read), errors map in one place.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.api.models import Scope
from apps.api.serializers import releases as s
from apps.api.views.base import BraidView, definition_or_404, valid
from apps.engine import rollout


class ReleaseList(BraidView):
    scopes = {"POST": Scope.ADMIN}

    @extend_schema(summary="A workflow's releases, newest first",
                   responses=s.ReleaseSerializer(many=True))
    def get(self, request, slug):
        definition_or_404(request, slug)
        return Response(rollout.history(slug, user=request.user))

    @extend_schema(summary="Deploy a version: immediate, blue_green (smoke runs) or canary",
                   request=s.DeploySerializer, responses={201: s.ReleaseSerializer})
    def post(self, request, slug):
        definition_or_404(request, slug)
        data = valid(s.DeploySerializer, request)
        release = rollout.deploy(slug, data.pop("version"), user=request.user, **data)
        return Response(rollout.describe(release), status=status.HTTP_201_CREATED)


class ReleaseCurrent(BraidView):
    @extend_schema(summary="The current (or latest) release: state, per-version figures, "
                           "the release log", responses=s.ReleaseStateSerializer)
    def get(self, request, slug):
        definition_or_404(request, slug)
        return Response(rollout.release_state(slug, user=request.user))


class ReleasePromote(BraidView):
    scopes = {"POST": Scope.ADMIN}

    @extend_schema(summary="Move the active release one step on (or switch a blue-green now)",
                   request=s.ActionSerializer, responses=s.ReleaseSerializer)
    def post(self, request, slug):
        definition_or_404(request, slug)
        data = valid(s.ActionSerializer, request)
        return Response(rollout.describe(rollout.promote(slug, user=request.user, **data)))


class ReleaseAbort(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="Stop the active release: stable takes every new execution",
                   request=s.ActionSerializer, responses=s.ReleaseSerializer)
    def post(self, request, slug):
        definition_or_404(request, slug)
        data = valid(s.ActionSerializer, request)
        return Response(rollout.describe(rollout.abort(slug, user=request.user, **data)))


class ReleaseRollback(BraidView):
    scopes = {"POST": Scope.OPERATE}

    @extend_schema(summary="End the active release, or make an earlier version current",
                   request=s.RollbackSerializer, responses=s.ReleaseSerializer)
    def post(self, request, slug):
        definition_or_404(request, slug)
        data = valid(s.RollbackSerializer, request)
        release = rollout.rollback(slug, data.get("to"), user=request.user,
                                   reason=data.get("reason", ""))
        return Response(rollout.describe(release))
