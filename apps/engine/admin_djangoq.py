"""django-q2's own admin (schedules, tasks, failures, the ORM queue) for superusers only.

Its Schedule admin starts any importable function with any arguments: in the
hands of a staff user that is code execution on every worker. Braid's own
schedules (apps.schedules) are what operators use; these pages stay for a
superuser debugging the cluster.
"""

from __future__ import annotations

import django_q.admin  # noqa: F401 - registers django-q2's admin classes first
from django.contrib import admin


class SuperuserOnly:
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request, *args):
        return self.has_module_permission(request) and super().has_add_permission(
            request, *args)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request) and super().has_change_permission(
            request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request) and super().has_delete_permission(
            request, obj)


def restrict_to_superusers(site: admin.AdminSite = admin.site) -> list[type]:
    """Re-register every django_q model's admin with superuser-only permissions."""
    models = [m for m in list(site._registry) if m._meta.app_label == "django_q"]
    for model in models:
        current = type(site.get_model_admin(model))
        if issubclass(current, SuperuserOnly):
            continue
        site.unregister(model)
        site.register(model, type(f"SuperuserOnly{current.__name__}",
                                  (SuperuserOnly, current), {}))
    return models


restrict_to_superusers()
