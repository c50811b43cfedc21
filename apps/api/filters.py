"""Query filters for lists (django-filter; documented in the OpenAPI schema)."""

import django_filters
from django import forms

from apps.engine.models import Execution
from apps.engine.statuses import ExecutionStatus, choices


class IdFilter(django_filters.NumberFilter):
    """A whole number in the database's integer range (not any decimal)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=2**31 - 1, **kwargs)


class ExecutionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=choices(ExecutionStatus))
    workflow = django_filters.CharFilter(field_name="definition__slug",
                                         help_text="the workflow's slug")
    version = IdFilter(field_name="version__number",
                                          help_text="version number (with workflow)")
    version_id = IdFilter(field_name="version_id")
    queue = django_filters.CharFilter()
    client_id = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at",
                                                     lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at",
                                                      lookup_expr="lt")

    class Meta:
        model = Execution
        fields = []
