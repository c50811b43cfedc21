from django.contrib import admin
from django.urls import include, path

from apps.api.health import health, ready
from config.metrics import metrics

admin.site.site_header = "Braid"
admin.site.site_url = None  # no public site: hide "View site"
admin.site.site_title = "Braid"
admin.site.index_title = "Workflows, executions and operations"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("health", health, name="health"),
    path("ready", ready, name="ready"),
    path("api/", include("apps.api.urls")),
    path("", include("apps.live.urls")),
]

handler404 = "apps.api.errors.not_found"
handler500 = "apps.api.errors.server_error"
