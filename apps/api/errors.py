"""One error format for the whole API, made in one place.

Every error is `{"error": {"code", "message", "details": [...]}}`; each detail
says where the problem is (`where`, and `node` for a definition's node).
Services raise BraidError subclasses; DRF raises its own; both land here.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from apps.engine.errors import Conflict, InputInvalid
from apps.workflows.errors import BraidError, DefinitionInvalid, NotFound, ReleaseConflict

log = logging.getLogger(__name__)

BRAID_STATUS = [(NotFound, 404), (Conflict, 409), (ReleaseConflict, 409),
                (DefinitionInvalid, 400),
                (InputInvalid, 400), (BraidError, 400)]


def body(code: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def error_response(code: str, message: str, status_code: int, details=None,
                   headers=None) -> JsonResponse:
    """For plain Django views and middleware (outside DRF's handler)."""
    return JsonResponse(body(code, message, details), status=status_code, headers=headers)


def _flatten(detail, where: str = "") -> list[dict]:
    """DRF's nested validation errors as a flat list of {where, node, message}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            out.extend(_flatten(value, f"{where}.{name}" if where and name else where or name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(d, dict | list) for d in detail):
            return [{"where": where, "node": None, "message": str(d)} for d in detail]
        out = []
        for i, value in enumerate(detail):
            out.extend(_flatten(value, f"{where}[{i}]"))
        return out
    return [{"where": where, "node": None, "message": str(detail)}]


def _drf(exc: exceptions.APIException) -> tuple[str, str, list]:
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        message = (f"{details[0]['where'] + ': ' if details[0]['where'] else ''}"
                   f"{details[0]['message']}" if len(details) == 1
                   else f"the request has {len(details)} problems")
        return "invalid", message, details
    detail = exc.detail
    message = str(detail) if not isinstance(detail, dict | list) else str(exc.default_detail)
    code = exc.default_code if isinstance(exc.default_code, str) else "error"
    return code, message, []


def exception_handler(exc, context):
    if isinstance(exc, BraidError):
        code = next(s for cls, s in BRAID_STATUS if isinstance(exc, cls))
        return Response(body(exc.code, exc.message, exc.problems), status=code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code, message, details = _drf(exc)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))
        return Response(body(code, message, details), status=exc.status_code, headers=headers)
    # A bug, not the caller's fault: log it with its traceback, show none.
    log.exception("unhandled API error in %s", context.get("view").__class__.__name__)
    return Response(body("server_error", "internal error; it has been logged"),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def not_found(request, exception=None):
    """handler404 for the whole site: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response("not_found", f"no such endpoint: {request.path}", 404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return error_response("server_error", "internal error; it has been logged", 500)
    from django.views.defaults import server_error as page

    return page(request)
