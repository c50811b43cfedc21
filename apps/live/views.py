from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.live import tickets


class WsTicketView(APIView):
    """POST: a single-use ticket for `?ticket=` on a WebSocket URL, valid for seconds."""

    # Following executions is reading: an API token with the `read` scope may ask.
    scopes = {"POST": "read"}

    def post(self, request):
        ticket, row = tickets.issue(request.user)
        return Response({"ticket": ticket, "expires_at": row.expires_at.isoformat()},
                        status=status.HTTP_201_CREATED)
