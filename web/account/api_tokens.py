"""Your API tokens (/account/tokens): each with its scope, when it was made, last used and expires;
a form to make one, whose secret the answer shows once; revoking one after a confirmation. Only
your own are listed or revoked: another's id is "not found", as one that does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar import Request
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import NewToken, list_tokens
from services.errors import InvalidInput, NotFound
from services.models import Tenant, User
from services.tenancy.security import record_cross_tenant_attempt
from web.account.password_first import ACCOUNT_PAGE
from web.auth import signed_in_user

TOKENS_PAGE = f"{ACCOUNT_PAGE}/tokens"
#: The scope of a token over the whole platform, as the form names it (tenants by their slug).
LANDLORD_SCOPE = "landlord"
#: The lifetimes offered, as the form names them.
EXPIRIES: dict[str, timedelta | None] = {
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
    "never": None,
}


@dataclass
class TokenForm:
    name: str = ""
    scope: str = ""
    expires: str = "90"


@dataclass(frozen=True)
class ScopeChoice:
    #: LANDLORD_SCOPE or a tenant's slug.
    value: str
    label: str


def scope_choices(user: User) -> list[ScopeChoice]:
    """What a token of `user` may act in: the landlord for the platform's staff, and each of their
    tenants."""
    landlord = (
        [ScopeChoice(LANDLORD_SCOPE, "The landlord: the whole platform")] if user.is_landlord_staff else []
    )
    tenants = sorted(
        (membership.tenant for membership in user.memberships), key=lambda tenant: tenant.name.lower()
    )
    return landlord + [ScopeChoice(tenant.slug, tenant.name) for tenant in tenants]


def lifetime(form: TokenForm) -> timedelta | None:
    """How long the token is to last (None: for ever), from the choices the form offers."""
    if form.expires not in EXPIRIES:
        raise InvalidInput("Choose when the token expires: in 30, 90 or 365 days, or never.", field="expires")
    return EXPIRIES[form.expires]


async def chosen_tenant(request: Request[Any, Any, Any], form: TokenForm) -> str | None:
    """The tenant's slug the form's scope names (None: the landlord), one the form offered. The
    form offers nothing else, so anything else is "not found"; a tenant that is not the caller's
    has been reached for, and the attempt is recorded against it (in a landlord session of its
    own: the request's is rolled back with the refusal)."""
    user = signed_in_user(request)
    if form.scope in {choice.value for choice in scope_choices(user)}:
        return None if form.scope == LANDLORD_SCOPE else form.scope
    async with request.app.state.database.session() as landlord:
        tenant = await landlord.scalar(select(Tenant).where(Tenant.slug == form.scope))
        if tenant is not None:
            await record_cross_tenant_attempt(
                landlord,
                actor=user,
                target=tenant,
                what="asked for an API token of another tenant",
                ip=request.client.host if request.client else None,
                detail={"method": request.method, "path": request.url.path},
            )
    raise NotFound("You act in no such tenant: choose a scope from the list.", field="scope")


async def tokens_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    form: TokenForm | None = None,
    created: NewToken | None = None,
    revoked_id: int | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    """The page; `created`: a token just made, whose secret it shows (this once)."""
    user = signed_in_user(request)
    choices = scope_choices(user)
    tokens = await list_tokens(db_session, user.email)
    context = {
        "tokens": tokens,
        "choices": choices,
        "form": form or TokenForm(scope=choices[0].value if choices else ""),
        "expiries": EXPIRIES,
        "created": created,
        "revoked": next((token for token in tokens if token.id == revoked_id), None),
        "errors": errors or {},
    }
    return Template("account/tokens.html", context=context, status_code=status)
