"""Token services: create (the secret is returned once), revoke, and look up."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from apps.api.models import ApiToken, Scope
from apps.engine.errors import InputInvalid

PREFIX = "braid_"
# last_used_at is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(minutes=1)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(scopes) -> list[str]:
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise InputInvalid(f"scopes must be some of {', '.join(Scope.values)}"
                           f"{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}",
                           [{"where": "scopes", "node": None, "message": "bad scopes"}])
    return [s for s in Scope.values if s in scopes]


def create_token(user, name: str, scopes, *, expires_days: float | None = None
                 ) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and its secret (which is stored nowhere)."""
    if expires_days is not None and expires_days <= 0:
        raise InputInvalid("expires_days must be positive")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name or "token", prefix=secret[:12], digest=digest_of(secret),
        scopes=parse_scopes(scopes),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None)
    return token, secret


def revoke_token(token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def find_token(secret: str) -> ApiToken | None:
    """The active token with this secret, or None (unknown, revoked, expired, user off)."""
    token = (ApiToken.objects.select_related("user").filter(digest=digest_of(secret))
             .first())
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
