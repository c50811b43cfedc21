"""Tokens in the admin: seeing them is not revoking them (personas: tests/personas.py)."""

from apps.api.models import ApiToken
from apps.api.tokens import create_token
from tests.personas import login, make_persona, offered_actions, post_action


def test_revoking_tokens_needs_the_change_permission(vera):
    token, _ = create_token(vera, "ci", ["read"])
    auditor = make_persona("audrey", "viewer", "api.view_apitoken")
    admin = make_persona("tess", None, "api.view_apitoken", "api.change_apitoken")

    assert offered_actions(login(auditor), ApiToken) == set()
    post_action(login(auditor), ApiToken, "revoke_selected", [token.pk])
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None

    assert "revoke_selected" in offered_actions(login(admin), ApiToken)
    post_action(login(admin), ApiToken, "revoke_selected", [token.pk])
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
