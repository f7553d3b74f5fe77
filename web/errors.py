"""Every error becomes a page (portal) or a JSON body (API) here, in one place. Never a trace."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar_htmx import ClientRedirect

from services.backups.archive import CorruptArchive
from services.errors import Conflict, DomainError, InvalidFields, InvalidInput, NotFound
from services.quotas import QuotaReached
from services.tenancy.access import TenantSuspended, TenantUnderMaintenance
from services.tenancy.connections import StoresBusy
from services.tenancy.switching import SwitchNotAllowed
from web.auth import API_PREFIX, current_user
from web.switching import SwitchFirst

log = logging.getLogger(__name__)

#: What Litestar's CSRF middleware says; users get words they can act on instead.
CSRF_FAILURE = "CSRF token verification failed"
_DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    TenantSuspended: 403,
    TenantUnderMaintenance: 503,
    CorruptArchive: 409,
    SwitchNotAllowed: 403,
    StoresBusy: 503,
    QuotaReached: 429,
}
_TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Check your input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Unavailable",
}


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(API_PREFIX) or request.url.path == "/healthz"


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    link: tuple[str, str] | None = None,
    **extra: Any,
) -> Response[Any]:
    """The API's JSON, or the portal's page (with `link`, the way forward: its address and words)."""
    if _is_api(request):
        return Response({"status_code": status, "detail": detail, **extra}, status_code=status)
    return Template(
        "errors/error.html",
        context={
            "status": status,
            "title": _TITLES.get(status, "Error"),
            "detail": detail,
            "link": link,
            "user": current_user(request),
        },
        status_code=status,
        media_type=MediaType.HTML,
    )


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _field_of(problem: dict[str, Any]) -> Any:
    """The field a validation problem is about. A missing one is reported on the whole body (its
    key is the handler's parameter, "data"); the message names the field, so that name is used."""
    missing = _MISSING_FIELD.search(str(problem.get("message", "")))
    return missing.group(1) if missing else problem.get("key")


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException) and not _is_api(request):
        wanted = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
        target = f"/login?next={quote(wanted)}"
        if request.headers.get("hx-request"):
            return ClientRedirect(target)
        return Redirect(target)
    if isinstance(exc, ValidationException) and _is_api(request):
        problems = exc.extra if isinstance(exc.extra, list) else []
        errors = [
            {"field": _field_of(p), "message": p.get("message"), "source": p.get("source")} for p in problems
        ]
        # A body that does not fit the schema is unprocessable input; a bad query or path is a bad request.
        status = 422 if any(error["source"] == "body" for error in errors) else 400
        return error_response(request, status, "The request is not valid.", errors=errors)
    if (
        isinstance(exc, TooManyRequestsException)
        and request.headers.get("hx-request")
        and not _is_api(request)
    ):
        return _rate_limited_notice(exc)
    detail = exc.detail if exc.status_code < 500 else _TITLES.get(exc.status_code, "Error")
    if detail == CSRF_FAILURE:
        detail = "This form has expired or came from another site. Reload the page and try again."
    link = exc.link if isinstance(exc, SwitchFirst) else None
    response = error_response(request, exc.status_code, detail, link=link)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _rate_limited_notice(exc: HTTPException) -> Response[Any]:
    """An HTMX request refused for its rate: a notice at the top of the page it came from (which
    stays as it was), saying when to try again."""
    return Template(
        "errors/_rate_limited.html",
        context={"detail": exc.detail},
        status_code=exc.status_code,
        headers={**(exc.headers or {}), "HX-Retarget": "#main", "HX-Reswap": "afterbegin"},
        media_type=MediaType.HTML,
    )


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = next((code for kind, code in _DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
    extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
    if isinstance(exc, InvalidFields):
        extra["errors"] = [{"field": field, "message": message} for field, message in exc.errors.items()]
    response = error_response(request, status, exc.message, **extra)
    if isinstance(exc, TenantUnderMaintenance):
        response.headers["Retry-After"] = "30"
    if isinstance(exc, QuotaReached):
        response.headers["Retry-After"] = str(exc.seconds_left())
    return response


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Tenantry hit an unexpected error. Nothing was shown to anyone else; the details are in the server log.",
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: handle_http_exception,
    DomainError: handle_domain_error,
    Exception: handle_unexpected,
}
