"""Your API tokens at /account/tokens: made with a name, a scope and an expiry, the secret shown on
the answer and never again, revoked after a confirmation; someone else's token is nobody's; an
expired token is refused by the API, even one it remembers. The command line gives an expiry too."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import create_token, list_tokens
from services.models import ApiToken, PlatformRole, TenantRole, User
from services.models.types import utcnow
from services.settings import Settings
from services.tenancy.security import CROSS_TENANT
from tests.services.running import run_tenantry, tenantry_env
from tests.support import Credentials, before_each_statement, post_form, run_db, signed_in
from tests.web.accounts import bearer, shown_once, trail
from tests.web.portal import add_tenant, add_token, add_user, assert_no_trace, portal
from tests.web.test_provisioning_pages import text_of

TOKENS = "/account/tokens"


def make_token(
    client: TestClient[Any], name: str = "deploy", scope: str = "landlord", expires: str = "30"
) -> Any:
    return post_form(client, TOKENS, {"name": name, "scope": scope, "expires": expires})


def tokens_of(settings: Settings, email: str) -> list[ApiToken]:
    return run_db(settings, lambda session: list_tokens(session, email))


def expire(settings: Settings, token_id: int) -> None:
    """The token's expiry moved into the past, as the clock would have moved past it."""

    async def work(session: AsyncSession) -> None:
        past = utcnow() - timedelta(minutes=1)
        await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(expires_at=past))

    run_db(settings, work)


def test_a_token_made_on_the_page_shows_its_secret_only_on_the_answer_and_works_at_once(
    superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    account = superadmin_client.get("/account")
    assert 'href="/account/tokens"' in account.text, "your account leads to your tokens"

    made = make_token(superadmin_client, name="deploy", expires="30")

    assert made.status_code == 201, made.text
    secret = shown_once(made.text, "token-secret")
    assert "This secret is shown only this once." in made.text
    assert superadmin_client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 200
    [token] = tokens_of(settings, superadmin.email)
    assert (token.name, token.tenant, token.user.email) == ("deploy", None, superadmin.email)
    assert token.expires_at is not None
    assert timedelta(days=29, hours=23) < token.expires_at - utcnow() <= timedelta(days=30)
    assert secret not in token.token_hash
    for path in (TOKENS, "/account", "/account/sessions", "/audit", "/audit.csv", "/users"):
        page = superadmin_client.get(path)
        assert page.status_code == 200, path
        assert secret not in page.text, f"{path} shows the secret again"
    listing = superadmin_client.get(TOKENS).text
    row = text_of(listing.split(f'id="token-{token.id}"')[1].split("</tr>")[0])
    assert "deploy" in row and "the landlord" in row and token.last_used_at is not None
    assert f"{token.last_used_at:%Y-%m-%d %H:%M} UTC" in row, "its use just now"
    assert f"{token.expires_at:%Y-%m-%d %H:%M} UTC" in row and "live" in row
    [created] = trail(settings, "token.create")
    assert (created.actor_email, created.target, created.tenant_id) == (
        superadmin.email,
        superadmin.email,
        None,
    )
    assert created.detail["prefix"] == token.prefix and created.detail["name"] == "deploy"
    assert created.detail["expires_at"] == token.expires_at.isoformat()
    assert secret not in str(created.detail)


def test_a_token_may_never_expire_and_a_nameless_one_is_refused_on_its_field(
    superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    nameless = make_token(superadmin_client, name="   ")
    assert nameless.status_code == 422
    assert 'id="name-error">Name the token, to tell it apart from your others later.' in nameless.text
    assert 'id="token-secret"' not in nameless.text
    odd_expiry = make_token(superadmin_client, expires="7")
    assert odd_expiry.status_code == 422
    assert "Choose when the token expires: in 30, 90 or 365 days, or never." in odd_expiry.text
    assert tokens_of(settings, superadmin.email) == []

    forever = make_token(superadmin_client, name="monitoring", expires="never")

    assert forever.status_code == 201
    [token] = tokens_of(settings, superadmin.email)
    assert token.expires_at is None
    assert "expires_at" not in trail(settings, "token.create")[0].detail


def test_tenant_people_make_tokens_for_their_own_tenants_only(
    client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "heron-club", "Heron Club")
    other = add_tenant(settings, "otter-club", "Otter Club")
    member = add_user(settings, "ada@heron.example", TenantRole.TENANT_MEMBER, "heron-club")
    signed_in(client, member)

    page = client.get(TOKENS).text
    assert '<option value="heron-club"' in page and "Heron Club" in page
    assert 'value="landlord"' not in page and "Otter Club" not in page, "only what they act in is offered"

    made = make_token(client, scope="heron-club")
    assert made.status_code == 201
    [token] = tokens_of(settings, member.email)
    assert token.tenant is not None and token.tenant.slug == "heron-club"
    assert trail(settings, "token.create")[0].tenant_id == token.tenant.id

    for scope in ("landlord", "otter-club", "no-such-club"):
        refused = make_token(client, scope=scope)
        assert refused.status_code == 404, scope
        assert "You act in no such tenant" in refused.text
        assert_no_trace(refused.text)
    assert len(tokens_of(settings, member.email)) == 1
    [attempt] = trail(settings, CROSS_TENANT)
    assert (attempt.actor_email, attempt.tenant_id) == (member.email, other.id), "recorded against Otter Club"


def test_revoking_asks_first_and_the_token_is_refused_from_its_next_request(
    superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    secret = shown_once(make_token(superadmin_client, name="ci").text, "token-secret")
    [token] = tokens_of(settings, superadmin.email)
    listing = superadmin_client.get(TOKENS).text
    assert f'href="/account/tokens/{token.id}/revoke"' in listing

    confirm = superadmin_client.get(f"{TOKENS}/{token.id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke the token ci?" in confirm.text and "This cannot be undone" in confirm.text
    assert superadmin_client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 200, "not yet"

    revoked = post_form(superadmin_client, f"{TOKENS}/{token.id}/revoke", {}, follow_redirects=False)

    assert (revoked.status_code, revoked.headers["location"]) == (303, f"{TOKENS}?revoked={token.id}")
    page = superadmin_client.get(revoked.headers["location"]).text
    assert 'id="token-revoked"' in page
    assert f'href="/account/tokens/{token.id}/revoke"' not in page, "nothing left to revoke"
    assert superadmin_client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 401
    again = post_form(superadmin_client, f"{TOKENS}/{token.id}/revoke", {}, follow_redirects=False)
    assert again.status_code == 303, "revoked already: nothing more to do"
    [entry] = trail(settings, "token.revoke")
    assert (entry.actor_email, entry.target, entry.detail["token"]) == (
        superadmin.email,
        superadmin.email,
        token.id,
    )


def test_someone_elses_token_is_not_found_and_stays_live(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    theirs = add_token(settings, "lee@landlord.example")
    [token] = tokens_of(settings, "lee@landlord.example")

    answers = [
        superadmin_client.get(f"{TOKENS}/{token.id}/revoke"),
        post_form(superadmin_client, f"{TOKENS}/{token.id}/revoke", {}),
        superadmin_client.get(f"{TOKENS}/{token.id + 1000}/revoke"),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404]
    assert answers[0].text == answers[2].text.replace(str(token.id + 1000), str(token.id)), "as for nobody's"
    assert "lee@landlord.example" not in superadmin_client.get(TOKENS).text
    assert superadmin_client.get("/api/v1/tenants", headers=bearer(theirs)).status_code == 200
    assert trail(settings, "token.revoke") == []


def test_an_expired_token_is_refused_by_the_api_and_shown_as_expired(
    superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    secret = shown_once(make_token(superadmin_client).text, "token-secret")
    [token] = tokens_of(settings, superadmin.email)
    assert superadmin_client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 200

    expire(settings, token.id)

    refused = superadmin_client.get("/api/v1/tenants", headers=bearer(secret))
    assert refused.status_code == 401, refused.text
    row = superadmin_client.get(TOKENS).text.split(f'id="token-{token.id}"')[1].split("</tr>")[0]
    assert "expired" in row and "/revoke" not in row


def test_a_remembered_token_is_refused_once_its_expiry_passes_though_nothing_was_committed(
    settings: Settings, superadmin: Credentials
) -> None:
    lifetime = timedelta(seconds=3)
    with portal(settings) as client:  # the app started first: the token's lifetime is the requests' alone
        made = run_db(
            settings, lambda session: create_token(session, email=superadmin.email, expires_in=lifetime)
        )
        assert made.token.expires_at is not None
        for _ in range(2):  # the first use is written down, then the token is remembered
            assert client.get("/api/v1/tenants", headers=bearer(made.secret)).status_code == 200
        reads: list[str] = []
        with before_each_statement(lambda sql: reads.append(sql) if "FROM api_tokens" in sql else None):
            assert client.get("/api/v1/tenants", headers=bearer(made.secret)).status_code == 200
        if settings.database_url.startswith("sqlite"):  # PostgreSQL's marks move with the whole server
            assert reads == [], "remembered: nothing was committed since"

        time.sleep(max(0.0, (made.token.expires_at - utcnow()).total_seconds()) + 0.1)

        refused = client.get("/api/v1/tenants", headers=bearer(made.secret))
        assert refused.status_code == 401, refused.text


def test_the_command_line_makes_a_token_that_expires(settings: Settings, superadmin: Credentials) -> None:
    made = run_tenantry(
        ["tokens", "create", "--email", superadmin.email, "--name", "nightly", "--expires-in-days", "7"],
        tenantry_env(settings),
    )

    assert made.returncode == 0, made.stderr
    [token] = tokens_of(settings, superadmin.email)
    assert token.expires_at is not None
    assert timedelta(days=6, hours=23) < token.expires_at - utcnow() <= timedelta(days=7)
    assert f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" in made.stdout
    assert trail(settings, "token.create")[0].detail["expires_at"] == token.expires_at.isoformat()
    listing = run_tenantry(["tokens", "list"], tenantry_env(settings)).stdout
    assert f"expires {token.expires_at:%Y-%m-%d}" in listing
    never = run_tenantry(
        ["tokens", "create", "--email", superadmin.email, "--expires-in-days", "0"], tenantry_env(settings)
    )
    assert never.returncode == 2 and "at least 1" in never.stderr


def test_someone_on_a_password_they_were_given_makes_no_token_before_choosing_their_own(
    client: TestClient[Any], settings: Settings
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)

    async def given_password(session: AsyncSession) -> None:
        await session.execute(update(User).where(User.email == lee.email).values(must_change_password=True))

    run_db(settings, given_password)
    signed_in(client, lee)

    for path in (TOKENS, "/account/sessions"):
        sent = client.get(path, follow_redirects=False)
        assert (sent.status_code, sent.headers["location"]) == (303, f"/account?next={path}")
    refused = post_form(
        client, TOKENS, {"name": "early", "scope": "landlord", "expires": "30"}, follow_redirects=False
    )
    assert refused.status_code == 303
    assert tokens_of(settings, lee.email) == []
