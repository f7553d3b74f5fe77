"""Signing in and out, and your account: your own password, your API tokens and your sessions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, cast

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import ClientRedirect, HTMXRequest

from services.accounts.recorded import change_password, issue_token, sign_out_elsewhere, withdraw_token
from services.accounts.tokens import find_token
from services.accounts.users import authenticate
from services.audit import Actor
from services.errors import DomainError
from services.models.types import utcnow
from services.settings import Settings
from web.account.api_tokens import TOKENS_PAGE, TokenForm, chosen_tenant, lifetime, tokens_page
from web.account.open_sessions import SESSIONS_PAGE, open_sessions
from web.account.password_first import ACCOUNT_PAGE, PASSWORD_FORM, account_page_first
from web.audit import caller_of, record_request
from web.auth import SESSION_USER, current_user, signed_in, signed_in_user
from web.deps import DbSession
from web.sessions import rotate_session, stamp_again, stamp_sign_in
from web.stores import LandlordStore

WRONG_CREDENTIALS = "That email and password do not match an account."


@dataclass
class PasswordForm:
    current_password: str = ""
    new_password: str = ""
    repeated_password: str = ""
    next: str = ""


@dataclass
class SignInForm:
    email: str = ""
    password: str = ""
    next: str = "/"


def safe_next(target: str) -> str:
    """Only paths of this site: never an open redirect to another host."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


class SignInThrottle:
    """Counts sign-in attempts per email and client address in a shared store. An attempt is
    counted before its password is checked, in one atomic step, so however many arrive at once
    at most `login_attempts` reach the check in a lockout window; a successful sign-in clears."""

    def __init__(self, request: Request[Any, Any, Any], settings: Settings, email: str) -> None:
        # create_app registers a LandlordStore here: it counts atomically (`increment`).
        self.store = cast(LandlordStore, request.app.stores.get("sign_in_failures"))
        address = request.client.host if request.client else "-"
        # Hashed: a key has a bounded length whatever was typed, and the store holds no emails.
        self.key = hashlib.sha256(f"{email.strip().lower()}|{address}".encode()).hexdigest()
        self.settings = settings

    async def seconds_to_wait(self) -> int:
        """Count this attempt: 0 when it may check its password, else the seconds until one may."""
        attempts = await self.store.increment(self.key, self.settings.login_lockout_seconds)
        if attempts <= self.settings.login_attempts:
            return 0
        return max(1, await self.store.expires_in(self.key) or 0)

    async def clear(self) -> None:
        await self.store.delete(self.key)


def _account_page(
    request: HTMXRequest, form: PasswordForm, *, errors: dict[str, str] | None = None, status: int = 200
) -> Template:
    context = {
        "account": signed_in_user(request),
        "form": form,
        "errors": errors or {},
        "changed": request.query_params.get("changed") == "1",
    }
    return Template("account/account.html", context=context, status_code=status)


class AccountController(Controller):
    include_in_schema = False

    @get("/login")
    async def sign_in_page(self, request: HTMXRequest, next: FromQuery[str] = "/") -> Response[Any]:
        if current_user(request) is not None:
            return Redirect(safe_next(next))
        return Template("account/login.html", context={"form": SignInForm(next=safe_next(next))})

    @post("/login")
    async def sign_in(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        settings: Settings = request.app.state.settings
        throttle = SignInThrottle(request, settings, data.email)
        typed = Actor(email=data.email.strip()[:254])
        if wait := await throttle.seconds_to_wait():
            await record_request(
                request, db_session, "sign_in_failed", actor=typed, detail={"throttled": True}
            )
            minutes = max(1, -(-wait // 60))
            return self._form_with_error(
                request, data, f"Too many failed sign-ins. Try again in {minutes} minute(s).", 429
            )
        user = await authenticate(db_session, data.email, data.password)
        if user is None:
            await record_request(request, db_session, "sign_in_failed", actor=typed)
            return self._form_with_error(request, data, WRONG_CREDENTIALS, 422)
        await throttle.clear()
        await record_request(request, db_session, "sign_in", actor=Actor.of(user))
        request.session[SESSION_USER] = user.id
        address = request.client.host if request.client else None
        stamp_sign_in(
            request.session, utcnow(), address=address, user_agent=request.headers.get("user-agent", "")
        )
        rotate_session(request.session)
        target = safe_next(data.next)
        if user.must_change_password:
            target = account_page_first(target)
        return ClientRedirect(target) if request.htmx else Redirect(target)

    @post("/logout")
    async def sign_out(self, request: HTMXRequest, db_session: DbSession) -> Response[Any]:
        if current_user(request) is not None:
            await record_request(request, db_session, "sign_out")
        request.clear_session()
        return ClientRedirect("/login") if request.htmx else Redirect("/login")

    @get(ACCOUNT_PAGE, guards=[signed_in])
    async def account_page(self, request: HTMXRequest, next: FromQuery[str] = "") -> Template:
        return _account_page(request, PasswordForm(next=safe_next(next) if next else ""))

    @post(PASSWORD_FORM, guards=[signed_in])
    async def change_password(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[PasswordForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Your own password; then on to where you were going, or this page saying it is done. Every
        other session of yours is signed out; this one stays."""
        user = signed_in_user(request)
        try:
            sessions_ended_at = await change_password(
                db_session,
                caller_of(request),
                user.id,
                current=data.current_password,
                new=data.new_password,
                repeated=data.repeated_password,
            )
        except DomainError as error:
            form = PasswordForm(next=data.next)
            return _account_page(request, form, errors=error.errors_by_field("new_password"), status=422)
        await db_session.commit()
        stamp_again(request.session, sessions_ended_at)
        rotate_session(request.session)
        if data.next:
            return Redirect(safe_next(data.next), status_code=HTTP_303_SEE_OTHER)
        return Redirect(f"{ACCOUNT_PAGE}?changed=1", status_code=HTTP_303_SEE_OTHER)

    @get(TOKENS_PAGE, guards=[signed_in])
    async def tokens(
        self, request: HTMXRequest, db_session: DbSession, revoked: FromQuery[int | None] = None
    ) -> Template:
        return await tokens_page(request, db_session, revoked_id=revoked)

    @post(TOKENS_PAGE, guards=[signed_in])
    async def create_api_token(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """A token of yours; the answer shows its secret, once. A scope the form did not offer is
        "not found" (web.account.api_tokens.chosen_tenant)."""
        tenant_slug = await chosen_tenant(request, data)
        try:
            created = await issue_token(
                db_session,
                caller_of(request),
                email=signed_in_user(request).email,
                tenant_slug=tenant_slug,
                name=data.name,
                expires_in=lifetime(data),
            )
        except DomainError as error:
            return await tokens_page(
                request, db_session, form=data, errors=error.errors_by_field("name"), status=422
            )
        return await tokens_page(request, db_session, created=created, status=201)

    @get(f"{TOKENS_PAGE}/{{token_id:int}}/revoke", guards=[signed_in])
    async def confirm_token_revoke(
        self, request: HTMXRequest, db_session: DbSession, token_id: FromPath[int]
    ) -> Template:
        token = await find_token(db_session, token_id, owner_id=signed_in_user(request).id)
        return Template("account/token_revoke.html", context={"token": token})

    @post(f"{TOKENS_PAGE}/{{token_id:int}}/revoke", guards=[signed_in])
    async def revoke_api_token(
        self, request: HTMXRequest, db_session: DbSession, token_id: FromPath[int]
    ) -> Redirect:
        """One of your own tokens revoked: refused from the next request that carries it."""
        await withdraw_token(db_session, caller_of(request), token_id, owner_id=signed_in_user(request).id)
        return Redirect(f"{TOKENS_PAGE}?revoked={token_id}", status_code=HTTP_303_SEE_OTHER)

    @get(SESSIONS_PAGE, guards=[signed_in])
    async def sessions(self, request: HTMXRequest, ended: FromQuery[bool] = False) -> Template:
        context = {"sessions": await open_sessions(request, signed_in_user(request)), "ended": ended}
        return Template("account/sessions.html", context=context)

    @post(f"{SESSIONS_PAGE}/sign-out-elsewhere", guards=[signed_in])
    async def sign_out_everywhere_else(self, request: HTMXRequest, db_session: DbSession) -> Redirect:
        """Every other session of yours is signed out on its next request; this one stays."""
        sessions_ended_at = await sign_out_elsewhere(
            db_session, caller_of(request), signed_in_user(request).id
        )
        await db_session.commit()
        stamp_again(request.session, sessions_ended_at)
        return Redirect(f"{SESSIONS_PAGE}?ended=true", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    def _form_with_error(request: HTMXRequest, form: SignInForm, error: str, status: int) -> Template:
        form.password = ""
        template = "account/_login_form.html" if request.htmx else "account/login.html"
        return Template(template, context={"form": form, "error": error}, status_code=status)
