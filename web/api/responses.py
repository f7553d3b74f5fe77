"""The API's error answers in its OpenAPI schema: their shape (what web/errors.py writes) and which
status codes each route documents.

The codes every route shares follow from what the route declares, and are added in one place
(`ApiErrorsDocumented`, registered on the app): a route that reads input answers 400 for input it
cannot read, one with a body 413 and 422, one naming something in its path 404, one behind the
landlord-token guard 403, and one in a tenant's scope 403, 404 and 503. A route documents by hand
only the codes that are its own (`responses=` on its decorator), and those win."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from web.auth import API_PREFIX, landlord_token

#: Handler parameters Litestar fills from the request itself; every other parameter that is not a
#: dependency is read from the path or the query string.
_FROM_THE_REQUEST = frozenset({"request", "data", "state", "scope", "headers", "cookies", "query", "body"})
#: The dependency every route in a tenant's scope has (see create_app).
_TENANT_SCOPED = "tenant_data"


@dataclass(frozen=True)
class FieldErrorOut:
    #: The field (or parameter) the mistake is about.
    field: str | None
    message: str
    #: Where it was read from, for input that did not fit the schema: body, query or path.
    source: str | None = None


@dataclass(frozen=True)
class ErrorOut:
    """Every error the API answers, whatever its status."""

    status_code: int
    #: A sentence saying what went wrong and, where there is one, what to do.
    detail: str
    #: The one field the error is about, when it is about one.
    field: str | None = None
    #: Each wrong field of refused input (400 and 422).
    errors: list[FieldErrorOut] | None = None
    #: The modules standing in the way of a module change (409 of PUT /api/v1/tenant/modules).
    in_the_way: list[str] | None = None


def error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorOut, description=description, generate_examples=False)


BAD_REQUEST = error("A path or query parameter of the wrong type, or a body that is not JSON")
NO_TOKEN = error("No valid API token: send 'Authorization: Bearer <token>'")
TOO_LARGE = error("The body is larger than Tenantry reads")
INVALID_BODY = error("The body does not fit: `errors` names each wrong field")
NOT_FOUND = error("Nothing by that name or id here")
LANDLORD_ONLY = error("This route needs a landlord token of the platform's staff")
TENANT_REFUSED = error(
    "This route needs a tenant token (of an admin, where the route says so), of a tenant that is not suspended"
)
RATE_LIMITED = error(
    "Too many requests in the last minute: Retry-After says when to try again; RateLimit and "
    "RateLimit-Policy (IETF httpapi draft) name the limit"
)
TENANT_UNAVAILABLE = error(
    "The tenant is being restored (Retry-After says when to ask again) or its store is busy"
)


def shared_errors(route: HTTPRoute, handler: HTTPRouteHandler) -> dict[int, ResponseSpec]:
    """The errors `handler` answers because of what it declares."""
    parameters = set(handler.parsed_fn_signature.parameters)
    errors = {401: NO_TOKEN, 429: RATE_LIMITED}
    if (parameters - _FROM_THE_REQUEST - set(handler.resolve_dependencies())) or "data" in parameters:
        errors[400] = BAD_REQUEST
    if "data" in parameters:
        errors |= {413: TOO_LARGE, 422: INVALID_BODY}
    if route.path_parameters:
        errors[404] = NOT_FOUND
    # The guards as declared: resolve_guards() hands back wrapped ones.
    if any(landlord_token in (layer.guards or []) for layer in handler.ownership_layers):
        errors[403] = LANDLORD_ONLY
    if _TENANT_SCOPED in handler.resolve_dependencies():
        errors |= {403: TENANT_REFUSED, 404: NOT_FOUND, 503: TENANT_UNAVAILABLE}
    return errors


class ApiErrorsDocumented(ReceiveRoutePlugin):
    """Adds the shared error answers to every API route's documentation as it is registered."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(API_PREFIX):
            return
        for handler in route.route_handlers:
            handler.responses = {**shared_errors(route, handler), **(handler.responses or {})}
