from django.urls import path

from apps.live.views import WsTicketView

urlpatterns = [
    path("api/v1/ws-tickets/", WsTicketView.as_view(), name="ws-ticket"),
]
