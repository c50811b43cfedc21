"""`Authorization: Bearer <token>` for programs; the browser uses its session (with CSRF)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.api.tokens import find_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("send `Authorization: Bearer <token>`")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("the token is not ASCII") from None
        token = find_token(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("unknown, expired or revoked token")
        return token.user, token

    def authenticate_header(self, request):
        # A WWW-Authenticate header makes DRF answer 401 (not 403) without credentials.
        return f'{self.keyword} realm="braid"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token (admin or `manage.py braid token create`)."}
