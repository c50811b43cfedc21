from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.live import tickets


class WsTicketView(APIView):
    """POST: a single-use ticket for `?ticket=` on a WebSocket URL, valid for seconds."""

    # Following executions live is reading: an API token needs only the `read` scope.
    scopes = {"POST": "read"}

    @extend_schema(summary="A single-use ticket for a WebSocket URL (`?ticket=`)",
                   request=None,
                   responses={201: inline_serializer("WsTicket", {
                       "ticket": serializers.CharField(),
                       "expires_at": serializers.DateTimeField()})})
    def post(self, request):
        ticket, row = tickets.issue(request.user)
        return Response({"ticket": ticket, "expires_at": row.expires_at.isoformat()},
                        status=status.HTTP_201_CREATED)
