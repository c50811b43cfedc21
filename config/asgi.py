import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# An ASGI server runs each request's sync code in a thread of its own, so a
# persistent connection per thread would pile up until PostgreSQL refuses
# clients; the settings give this process a connection pool instead.
_set_here = "BRAID_ASGI" not in os.environ
os.environ.setdefault("BRAID_ASGI", "1")
django_asgi_app = get_asgi_application()  # reads the settings
if _set_here:  # processes this one starts are not web processes
    del os.environ["BRAID_ASGI"]

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
