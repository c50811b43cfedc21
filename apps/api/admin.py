"""API tokens in the admin: create (the secret is shown once, in a message) and revoke."""

from django import forms
from django.contrib import admin, messages

from apps.api import tokens
from apps.api.models import ApiToken, Scope


class TokenCreateForm(forms.ModelForm):
    scope_list = forms.MultipleChoiceField(choices=Scope.choices, label="scopes",
                                           widget=forms.CheckboxSelectMultiple)
    expires_days = forms.FloatField(required=False, min_value=0.001,
                                    help_text="empty: never expires")

    class Meta:
        model = ApiToken
        fields = ["user", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scopes", "created_at", "expires_at",
                    "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    actions = ["revoke_selected"]
    readonly_fields = ["user", "name", "prefix", "scopes", "created_at", "expires_at",
                       "revoked_at", "last_used_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TokenCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "scope_list", "expires_days"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, secret = tokens.create_token(form.cleaned_data["user"], obj.name,
                                            form.cleaned_data["scope_list"],
                                            expires_days=form.cleaned_data["expires_days"])
        obj.pk = token.pk
        obj.__dict__.update({k: v for k, v in token.__dict__.items() if not k.startswith("_")})
        messages.warning(request, f"The token, shown only now: {secret}")

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        for token in queryset:
            tokens.revoke_token(token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
