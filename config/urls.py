from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Braid"
admin.site.site_title = "Braid"
admin.site.index_title = "Workflows, executions and operations"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]
