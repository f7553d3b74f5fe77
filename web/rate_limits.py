"""Rate limits over HTTP: every request is counted against the budgets of whoever sends it
(services.rate_limits) and refused with a 429 when one of them has no room left.

- `RateLimitMiddleware` runs once who is asking is known. It counts anonymous requests per address
  and signed-in requests outside a tenant per person or token, with the installation's limits.
- Inside a tenant (its portal and its API), the tenant scope middleware calls `admit_into_tenant`
  once it knows the caller may enter. Members and tenant tokens are held to the tenant's limits.
  Staff, switched in or not, are held to their own limits and never count against the tenant's.
- API answers carry `RateLimit-Policy` and `RateLimit` (IETF httpapi draft) for the budget with
  the least left. A refusal is a 429 with `Retry-After`: JSON on the API, a page in the portal,
  a partial for HTMX.

A caller refused on the API is refused at the door for a moment after (`RefusedAtTheDoor`, the
first middleware): its next requests of the same kind get the same 429 without the server looking
up who they are or asking the counters, so a flood costs a parsed request and a short answer each.

The tenant routers declare `opt=COUNTED_IN_TENANT`. A route handler says what kind of request it serves with `opt={"rate_class": "export"}`
(`EXPORT`); otherwise reads are GET, HEAD and OPTIONS, and everything else is a write."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.models import ApiToken, User
from services.rate_limits.counters import Budget, Counters, Verdict
from services.rate_limits.policy import CLASS_NAMES, Rates, RequestClass, tenant_rates
from services.recently_used import LeastRecentlyUsed
from services.settings import Settings
from services.tenancy.access import TenantAccess
from web.auth import API_PREFIX

#: What a handler that serves an export or a download declares in its `opt`.
EXPORT = {"rate_class": RequestClass.EXPORT}
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What the tenant routers declare in their `opt`: a signed-in request to them is counted once
#: the tenant is entered (`admit_into_tenant`), not by the middleware.
COUNTED_IN_TENANT = {"rate_counted_in_tenant": True}
_UNCOUNTED_PREFIXES = ("/static/", "/healthz")
#: How long after a refusal the caller's API requests of the same kind are refused at the door, at
#: most (never past the moment the refusing budget has room again). Short, so that a budget that
#: frees up as its window slides lets the caller's requests through as it would have.
DOOR_SECONDS = 1.0


class RateLimited(TooManyRequestsException):
    """A 429 that says, in words and headers, when to try again."""

    def __init__(self, verdict: Verdict, kind: RequestClass) -> None:
        wait = verdict.reset_seconds
        when = "in a minute" if wait >= 55 else f"in {wait} second{'s' if wait != 1 else ''}"
        super().__init__(
            detail=f"Too many {CLASS_NAMES[kind]} in the last minute "
            f"({verdict.budget.per_minute:,} allowed). Try again {when}.",
            headers={"Retry-After": str(wait), **rate_limit_headers(verdict)},
        )
        self.retry_after = wait


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    budget = verdict.budget
    return {
        "RateLimit-Policy": f'"{budget.policy}";q={budget.per_minute};w=60',
        "RateLimit": f'"{budget.policy}";r={verdict.remaining};t={verdict.reset_seconds}',
    }


def request_class(scope: Scope) -> RequestClass:
    declared = scope["route_handler"].opt.get("rate_class")
    if declared is not None:
        return RequestClass(declared)
    method = scope.get("method", "GET")
    if scope["path"] == "/login" and method == "POST":
        return RequestClass.SIGN_IN
    return RequestClass.READ if method in _READS else RequestClass.WRITE


def _budget(
    policy: str, counter: str, rates: Rates, kind: RequestClass, tenant_id: int | None = None
) -> list[Budget]:
    per_minute = rates.of(kind)
    return [] if per_minute is None else [Budget(f"{policy}-{kind.value}", counter, per_minute, tenant_id)]


def _caller(user: User, token: ApiToken | None) -> str:
    return f"token:{token.id}" if token is not None else f"user:{user.id}"


async def _enforce(scope: Scope, send: Send, budgets: Sequence[Budget], kind: RequestClass) -> Send:
    """Count the request; refuse it, or give back `send` adding the RateLimit headers to an API answer."""
    if not budgets:
        return send
    counters: Counters = scope["app"].state.rate_limits
    refusal = await counters.admit(budgets)
    if refusal is not None:
        scope["app"].state.refused_lately.remember(scope, kind, refusal)
        raise RateLimited(refusal, kind)
    # Only the API's answers carry what is left: the portal's pages do not pay for asking.
    verdict = await counters.tightest(budgets) if scope["path"].startswith(API_PREFIX) else None
    if verdict is None:
        return send
    headers = [(name.lower().encode(), value.encode()) for name, value in rate_limit_headers(verdict).items()]

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return send_with_headers


def _door_key(scope: Scope) -> bytes | None:
    """Who an API request says it is, as sent: its token, else its session cookie, else its address."""
    if not scope["path"].startswith(API_PREFIX):
        return None
    headers = dict(scope.get("headers", ()))
    for name in (b"authorization", b"cookie"):
        if name in headers:
            return name + b":" + headers[name]
    client = scope.get("client")
    return b"address:" + (client[0] if client else "-").encode()


class RefusedLately:
    """API callers refused a moment ago: by what they sent to say who they are and the kind of
    request, until when, and the verdict that refused them."""

    def __init__(self, limit: int = 10_000) -> None:
        self._refused: LeastRecentlyUsed[tuple[bytes, RequestClass], tuple[float, float, Verdict]] = (
            LeastRecentlyUsed(limit)
        )

    def remember(self, scope: Scope, kind: RequestClass, verdict: Verdict) -> None:
        key = _door_key(scope)
        if key is not None:
            now = time.monotonic()
            until = now + min(DOOR_SECONDS, verdict.reset_seconds)
            self._refused.put((key, kind), (until, now + verdict.reset_seconds, verdict))

    def still_refused(self, scope: Scope, kind: RequestClass) -> Verdict | None:
        """The verdict a request is refused at the door with (its wait counted down), if it is."""
        key = _door_key(scope)
        found = self._refused.get((key, kind)) if key is not None else None
        if key is None or found is None:
            return None
        until, room_at, verdict = found
        now = time.monotonic()
        if now >= until:
            self._refused.pop((key, kind))
            return None
        return replace(verdict, remaining=0, reset_seconds=max(1, math.ceil(room_at - now)))


class RefusedAtTheDoor(ASGIMiddleware):
    """The first middleware: an API caller refused a moment ago is refused again at once."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        state = scope["app"].state
        if state.settings.rate_limits:
            kind = request_class(scope)
            verdict = state.refused_lately.still_refused(scope, kind)
            if verdict is not None:
                await state.rate_limits.count_refusal(verdict.budget)
                raise RateLimited(verdict, kind)
        await next_app(scope, receive, send)


class RateLimitMiddleware(ASGIMiddleware):
    """Anonymous requests per address; signed-in ones outside a tenant per person or token."""

    scopes = (ScopeType.HTTP,)

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        return scope["path"].startswith(_UNCOUNTED_PREFIXES)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        settings: Settings = scope["app"].state.settings
        user: User | None = scope.get("user")
        in_tenant = scope["route_handler"].opt.get("rate_counted_in_tenant", False)
        if not settings.rate_limits or (user is not None and in_tenant):
            await next_app(scope, receive, send)
            return
        kind = request_class(scope)
        if user is None:
            client = scope.get("client")
            budgets = _budget(
                "address", f"address:{client[0] if client else '-'}", settings.anonymous_rates, kind
            )
        else:
            budgets = _budget("person", _caller(user, scope.get("auth")), settings.staff_rates, kind)
        await next_app(scope, receive, await _enforce(scope, send, budgets, kind))


async def admit_into_tenant(scope: Scope, send: Send, access: TenantAccess, user: User) -> Send:
    """Count a request the caller may make in the tenant: against the tenant's limits and their
    own share of them (members, tenant tokens), or their staff limits (switched in)."""
    settings: Settings = scope["app"].state.settings
    if not settings.rate_limits:
        return send
    kind = request_class(scope)
    caller = _caller(user, scope.get("auth"))
    if access.via == "switch":
        return await _enforce(scope, send, _budget("person", caller, settings.staff_rates, kind), kind)
    tenant = access.tenant
    rates = tenant_rates(tenant)
    budgets = [
        *_budget("each", f"tenant:{tenant.id}:{caller}", rates.each, kind, tenant.id),
        *_budget("tenant", f"tenant:{tenant.id}", rates.tenant, kind, tenant.id),
    ]
    return await _enforce(scope, send, budgets, kind)
