from django.urls import re_path

from apps.live.consumers import ClientConsumer, ExecutionConsumer
from apps.live.middleware import LiveAuthMiddleware

websocket_urlpatterns = [
    re_path(r"^ws/executions/(?P<execution_id>[^/]+)/$", ExecutionConsumer.as_asgi()),
    re_path(r"^ws/clients/(?P<client_id>[^/]+)/$", ClientConsumer.as_asgi()),
]


def websocket_application():
    from channels.routing import URLRouter

    return LiveAuthMiddleware(URLRouter(websocket_urlpatterns))
