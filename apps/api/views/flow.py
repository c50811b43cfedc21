"""Flow control: concurrency limits, resource pools and rate limits, written through
apps.engine.flow_control (which validates, forgets cached rules and wakes workers).

These rows belong to no team: they need the global Django permissions (view, add,
change, delete of the model; the owners' group has them), like the admin.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.response import Response

from apps.api.serializers import flow as s
from apps.api.views.base import BraidView, valid
from apps.engine import flow_control
from apps.engine.models import ConcurrencyLimit, RateLimit, ResourcePool
from apps.workflows.models import WorkflowDefinition

WRITE = {"POST": "admin", "PATCH": "admin", "DELETE": "admin"}
ACTIONS = {"GET": "view", "POST": "add", "PATCH": "change", "DELETE": "delete"}


class ModelPermission(permissions.BasePermission):
    """The global permission for the method on the view's model (view, add, change,
    delete)."""

    def has_permission(self, request, view):
        meta = view.model._meta
        perm = f"{meta.app_label}.{ACTIONS.get(request.method, 'view')}_{meta.model_name}"
        self.message = f"this needs the {perm} permission"
        return bool(request.user and request.user.is_active and request.user.has_perm(perm))


class FlowView(BraidView):
    scopes = WRITE
    permission_classes = BraidView.permission_classes + [ModelPermission]
    model = None


def _get(model, label: str, **lookup):
    row = model.objects.filter(**lookup).first()
    if row is None:
        raise exceptions.NotFound(f"no {label} {next(iter(lookup.values()))}")
    return row


def _workflow(slug):
    if slug is None:
        return None
    definition = WorkflowDefinition.objects.filter(slug=slug, adhoc=False).first()
    if definition is None:
        raise exceptions.ValidationError({"workflow": [f"no workflow {slug!r}"]})
    return definition


# --- concurrency limits ------------------------------------------------------------------

class LimitList(FlowView):
    model = ConcurrencyLimit

    @extend_schema(summary="Concurrency limits", responses=s.LimitSerializer(many=True))
    def get(self, request):
        rows = ConcurrencyLimit.objects.select_related("workflow").order_by("id")
        return Response(s.LimitSerializer(rows, many=True).data)

    @extend_schema(summary="Add a concurrency limit (global, per workflow, or per key)",
                   request=s.LimitSerializer, responses={201: s.LimitSerializer})
    def post(self, request):
        data = valid(s.LimitSerializer, request)
        limit = ConcurrencyLimit(workflow=_workflow((data.get("workflow") or {}).get("slug")),
                                 key=data["key"], max_running=data["max_running"])
        return Response(s.LimitSerializer(flow_control.save_concurrency_limit(limit)).data,
                        status=status.HTTP_201_CREATED)


class LimitDetail(FlowView):
    model = ConcurrencyLimit

    @extend_schema(summary="One concurrency limit", responses=s.LimitSerializer)
    def get(self, request, pk):
        return Response(s.LimitSerializer(_get(ConcurrencyLimit, "limit", pk=pk)).data)

    @extend_schema(summary="Change a concurrency limit", request=s.LimitChangeSerializer,
                   responses=s.LimitSerializer)
    def patch(self, request, pk):
        limit = _get(ConcurrencyLimit, "limit", pk=pk)
        for key, value in valid(s.LimitChangeSerializer, request).items():
            setattr(limit, key, value)
        return Response(s.LimitSerializer(flow_control.save_concurrency_limit(limit)).data)

    @extend_schema(summary="Delete a concurrency limit", responses={204: None})
    def delete(self, request, pk):
        flow_control.delete_concurrency_limits([_get(ConcurrencyLimit, "limit", pk=pk).pk])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- resource pools ----------------------------------------------------------------------

class PoolList(FlowView):
    model = ResourcePool

    @extend_schema(summary="Resource pools", responses=s.PoolSerializer(many=True))
    def get(self, request):
        return Response(s.PoolSerializer(ResourcePool.objects.order_by("name"), many=True).data)

    @extend_schema(summary="Add a resource pool", request=s.PoolSerializer,
                   responses={201: s.PoolSerializer})
    def post(self, request):
        data = valid(s.PoolSerializer, request)
        if ResourcePool.objects.filter(pk=data["name"]).exists():
            raise exceptions.ValidationError({"name": [f"pool {data['name']!r} exists"]})
        pool = flow_control.save_resource_pool(ResourcePool(**data))
        return Response(s.PoolSerializer(pool).data, status=status.HTTP_201_CREATED)


class PoolDetail(FlowView):
    model = ResourcePool

    @extend_schema(summary="One resource pool", responses=s.PoolSerializer)
    def get(self, request, name):
        return Response(s.PoolSerializer(_get(ResourcePool, "pool", pk=name)).data)

    @extend_schema(summary="Resize or describe a pool (parked runs go when it has room)",
                   request=s.PoolChangeSerializer, responses=s.PoolSerializer)
    def patch(self, request, name):
        pool = _get(ResourcePool, "pool", pk=name)
        for key, value in valid(s.PoolChangeSerializer, request).items():
            setattr(pool, key, value)
        return Response(s.PoolSerializer(flow_control.save_resource_pool(pool)).data)

    @extend_schema(summary="Delete a resource pool", responses={204: None})
    def delete(self, request, name):
        flow_control.delete_resource_pools([_get(ResourcePool, "pool", pk=name).pk])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- rate limits -------------------------------------------------------------------------

class RateLimitList(FlowView):
    model = RateLimit

    @extend_schema(summary="Rate limits (token buckets)",
                   responses=s.RateLimitSerializer(many=True))
    def get(self, request):
        return Response(s.RateLimitSerializer(RateLimit.objects.order_by("id"), many=True).data)

    @extend_schema(summary="Add a rate limit for a queue, workflow or node type",
                   request=s.RateLimitSerializer, responses={201: s.RateLimitSerializer})
    def post(self, request):
        limit = flow_control.save_rate_limit(RateLimit(**valid(s.RateLimitSerializer, request)))
        return Response(s.RateLimitSerializer(limit).data, status=status.HTTP_201_CREATED)


class RateLimitDetail(FlowView):
    model = RateLimit

    @extend_schema(summary="One rate limit", responses=s.RateLimitSerializer)
    def get(self, request, pk):
        return Response(s.RateLimitSerializer(_get(RateLimit, "rate limit", pk=pk)).data)

    @extend_schema(summary="Change a rate limit", request=s.RateLimitChangeSerializer,
                   responses=s.RateLimitSerializer)
    def patch(self, request, pk):
        limit = _get(RateLimit, "rate limit", pk=pk)
        for key, value in valid(s.RateLimitChangeSerializer, request).items():
            setattr(limit, key, value)
        return Response(s.RateLimitSerializer(flow_control.save_rate_limit(limit)).data)

    @extend_schema(summary="Delete a rate limit", responses={204: None})
    def delete(self, request, pk):
        flow_control.delete_rate_limits([_get(RateLimit, "rate limit", pk=pk).pk])
        return Response(status=status.HTTP_204_NO_CONTENT)
