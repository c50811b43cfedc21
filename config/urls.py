from django.contrib import admin
from django.urls import include, path

from config.metrics import metrics

admin.site.site_header = "Braid"
admin.site.site_url = None  # no public site: hide "View site"
admin.site.site_title = "Braid"
admin.site.index_title = "Workflows, executions and operations"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("", include("apps.live.urls")),
]
