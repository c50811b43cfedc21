import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # `braid serve` runs plain daphne, which serves no static files: with DEBUG on,
    # serve the admin's CSS and JS from the finders like runserver does.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from apps.live.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app,
                                  "websocket": websocket_application()})
