"""Form fields shared by the admin pages of every floor."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from apps.nodes import payloads


class BoundedJSONField(forms.JSONField):
    """A JSON field that refuses JSON nested too deeply (Django's own raises
    RecursionError, a 500, on `[[[[…]]]]` 10,000 deep) and says where bad JSON is
    wrong. `require_object` refuses anything but a JSON object."""

    def __init__(self, *, require_object: bool = False, **kwargs):
        self.require_object = require_object
        super().__init__(**kwargs)

    def _parse(self, value: str):
        try:
            return payloads.loads(value, "JSON")
        except payloads.PayloadError as exc:
            raise ValidationError(str(exc), code="invalid") from None

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, str):
            value = self._parse(value)
        if self.require_object and not isinstance(value, dict):
            raise ValidationError("must be a JSON object, such as {\"amount\": 50}",
                                  code="invalid")
        if isinstance(value, list | dict) and payloads.depth_over(value):
            raise ValidationError(f"JSON nested more than {payloads.MAX_DEPTH} levels deep",
                                  code="invalid")
        return value

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return self._parse(data)
        except ValidationError:
            return InvalidJSONInput(data)

    def has_changed(self, initial, data):
        try:
            return super().has_changed(initial, data)
        except (ValidationError, RecursionError):
            return True
