"""Request bodies over the API's limit get 413 before anything reads them."""

from django.conf import settings

from apps.api.errors import error_response


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            limit = settings.BRAID_API["MAX_BODY_BYTES"]
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response("invalid", "Content-Length is not a number", 400)
            if length > limit:
                return error_response(
                    "too_large", f"the request body is {length} bytes; the limit is {limit}",
                    413, [{"where": "body", "node": None,
                           "message": f"at most {limit} bytes"}])
        return self.get_response(request)
