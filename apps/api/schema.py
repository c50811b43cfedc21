"""OpenAPI: every operation documents the error shape for the codes it can return."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse

from apps.api.serializers.common import ErrorSerializer

ERRORS = {
    "400": "Bad request: the details list each problem and where it is",
    "401": "Not authenticated (no, unknown, expired or revoked credentials)",
    "403": "Authenticated, but the token's scope or the user's role does not allow it",
    "404": "Unknown id, or one the caller may not see",
    "405": "Method not allowed",
    "409": "The object's state does not allow this now",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "429": "Throttled: retry after the Retry-After header's seconds",
}
READ_ERRORS = ("401", "403", "404", "405", "429")


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ERRORS if self.method not in ("GET", "HEAD") else READ_ERRORS
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=ERRORS[code]), code,
                    direction=direction)
        if self.method in ("GET", "HEAD") and "400" not in responses and self._has_query():
            responses["400"] = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERRORS["400"]), "400",
                direction=direction)
        return responses

    def _has_query(self) -> bool:
        return bool(getattr(self.view, "filterset_class", None)
                    or getattr(self.view, "pagination_class", None)
                    or getattr(self.view, "query_serializer", None))
