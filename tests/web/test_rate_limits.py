"""Rate limits over HTTP, embedded (counted in the web process's memory): a tenant's members share
its limit and each has a share of their own; anonymous callers are counted per address, their
sign-in attempts apart; staff switched into a tenant are held to their own limits, never the
tenant's; refusals are 429s that say when to try again, in JSON with the IETF headers, as a page,
and as a notice for HTMX."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Tenant
from services.rate_limits.policy import Rates, TenantRates
from services.settings import Settings
from tests.services.running import Background, background, free_port, wait_for
from tests.support import Credentials, post_form, requires_redis, run_db, sign_in, signed_in
from tests.web.portal import add_token, portal
from tests.web.tenant_world import add_admin, add_member, no_stores_left_behind, provision
from tests.workers.support import on_redis

__all__ = ["no_stores_left_behind"]

SLUG = "harbour-club"
RETRY_SENTENCE = re.compile(r"Try again in (\d+) seconds?\.|Try again in a minute\.")


def own_limits(settings: Settings, slug: str, limits: TenantRates) -> None:
    """The tenant's own limits, in place of its plan's, as the landlord's form leaves them."""

    async def work(session: AsyncSession) -> None:
        await session.execute(update(Tenant).where(Tenant.slug == slug).values(rate_limits=limits.as_json()))
        await session.commit()

    run_db(settings, work)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_refused(answer: Any, allowed: int, what: str) -> None:
    assert answer.status_code == 429, answer.text
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    body = answer.json()
    assert body["detail"].startswith(f"Too many {what} in the last minute ({allowed} allowed). Try again in")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tenants_callers_share_its_limit_and_each_has_a_share_of_their_own(settings: Settings) -> None:
    provision(settings, SLUG)
    add_admin(settings, SLUG, "ada@harbour.example")
    add_member(settings, SLUG, "bo@harbour.example")
    ada = bearer(add_token(settings, "ada@harbour.example", SLUG))
    bo = bearer(add_token(settings, "bo@harbour.example", SLUG))
    own_limits(settings, SLUG, TenantRates(tenant=Rates(read=6), each=Rates(read=4)))

    with portal(settings) as client:
        for left in (3, 2, 1, 0):
            answer = client.get("/api/v1/tenant/units", headers=ada)
            assert answer.status_code == 200
            assert answer.headers["RateLimit-Policy"] == '"each-read";q=4;w=60'
            assert re.fullmatch(rf'"each-read";r={left};t=\d+', answer.headers["RateLimit"])
        assert_refused(client.get("/api/v1/tenant/units", headers=ada), 4, "reads")

        # Bo has a share of his own, but only what is left of the tenant's six: two.
        assert [client.get("/api/v1/tenant/units", headers=bo).status_code for _ in range(2)] == [200, 200]
        refused = client.get("/api/v1/tenant/units", headers=bo)
        assert_refused(refused, 6, "reads")
        assert refused.headers["RateLimit-Policy"] == '"tenant-read";q=6;w=60'

        # Changes are counted apart from reads: Ada may still change things.
        answer = client.post("/api/v1/tenant/data/groups", json={"name": "Rowers"}, headers=ada)
        assert answer.status_code != 429, answer.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_anonymous_callers_are_counted_per_address_with_sign_in_attempts_apart(settings: Settings) -> None:
    settings = dataclasses.replace(settings, anonymous_rates=Rates(read=3, sign_in=2))
    with portal(settings) as client:
        page = client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token
        wrong = {"email": "nobody@example.org", "password": "wrong", "_csrf_token": token.group(1)}
        assert [client.post("/login", data=wrong).status_code for _ in range(2)] == [422, 422]
        refused = client.post("/login", data=wrong)
        assert refused.status_code == 429
        assert "Too many sign-in attempts in the last minute (2 allowed)." in refused.text
        assert RETRY_SENTENCE.search(refused.text)
        assert "Traceback" not in refused.text

        # Reading pages is counted apart: two more of the three.
        assert [client.get("/login").status_code for _ in range(2)] == [200, 200]
        page = client.get("/login")
        assert page.status_code == 429
        assert "<h1>Too many requests</h1>" in page.text
        assert "Too many reads in the last minute (3 allowed)." in page.text

        assert asyncio.run(get_from(client.app, "203.0.113.9", "/login")) == 200


async def get_from(app: Any, address: str, path: str) -> int:
    """The status of a GET of `path` sent to `app` from another address."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as other:
        return (await other.get(path)).status_code


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_staff_switched_into_a_tenant_are_held_to_their_own_limits_not_the_tenants(
    settings: Settings, superadmin: Credentials
) -> None:
    settings = dataclasses.replace(settings, staff_rates=Rates(read=6, write=10))
    provision(settings, SLUG)
    add_member(settings, SLUG, "bo@harbour.example")
    bo = bearer(add_token(settings, "bo@harbour.example", SLUG))
    own_limits(settings, SLUG, TenantRates(tenant=Rates(read=1), each=Rates()))

    with portal(settings) as client:
        assert client.get("/api/v1/tenant/units", headers=bo).status_code == 200
        assert_refused(client.get("/api/v1/tenant/units", headers=bo), 1, "reads")

        assert sign_in(client, superadmin).status_code in (302, 303)
        reason = {"reason": "Ticket 4411: a member cannot sign in"}
        switched = post_form(client, f"/tenants/{SLUG}/switch", reason, follow_redirects=False)
        assert switched.status_code in (302, 303), switched.text
        # The tenant has no reads left, and yet the superadmin reads, until their own six are used
        # (with the landlord pages they read on the way).
        answers = [client.get(f"/t/{SLUG}/units").status_code for _ in range(7)]
        assert answers[0] == 200
        assert answers[-1] == 429
        refused = client.get(f"/t/{SLUG}/units")
        assert refused.status_code == 429
        assert "Too many reads in the last minute (6 allowed)." in refused.text

        # An HTMX request gets a notice put at the top of the page it came from.
        notice = client.get(f"/t/{SLUG}/", headers={"HX-Request": "true"})
        assert notice.status_code == 429
        assert notice.headers["HX-Retarget"] == "#main"
        assert notice.headers["HX-Reswap"] == "afterbegin"
        assert re.fullmatch(
            r'<p class="alert error" role="alert" id="rate-limited">Too many reads in the last minute '
            r"\(6 allowed\)\. Try again in (\d+ seconds?|a minute)\.</p>\s*",
            notice.text,
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_rate_limits_off_nothing_is_refused(settings: Settings) -> None:
    settings = dataclasses.replace(settings, rate_limits=False, anonymous_rates=Rates(read=1))
    with portal(settings) as client:
        assert [client.get("/login").status_code for _ in range(3)] == [200] * 3


@requires_redis
def test_two_web_processes_on_redis_together_allow_the_limit_not_twice_it(tmp_path: Path) -> None:
    """Two `tenantry serve` processes on one Redis count in the same counters: 300 anonymous reads
    from one address, taken in turn by each process, against a limit of 100 a minute."""
    ports = [free_port(), free_port()]
    with (
        on_redis(tmp_path / "data", TENANTRY_RATE_LIMITS_ANONYMOUS="read=100") as env,
        ExitStack() as servers,
    ):
        started = []
        for turn, port in enumerate(ports):  # one after the other: the first migrates the landlord
            server = servers.enter_context(
                background(["serve", "--workers", "1", "--port", str(port)], env, tmp_path / f"web-{turn}")
            )
            wait_for(
                partial(_healthy, server, port), 60, what=f"the server on {port} to answer", interval=0.1
            )
            started.append(server)
        with httpx.Client(timeout=10) as client:
            answers = [client.get(f"http://127.0.0.1:{ports[turn % 2]}/login") for turn in range(300)]
        for server in started:
            assert server.stop() in (0, -signal.SIGTERM), server.stderr
            assert "Traceback" not in server.stderr, server.stderr

    allowed = [answer for answer in answers if answer.status_code == 200]
    assert 95 <= len(allowed) <= 105, len(allowed)
    assert {answer.status_code for answer in answers} == {200, 429}
    assert {turn % 2 for turn, answer in enumerate(answers) if answer.status_code == 200} == {0, 1}


def _healthy(server: Background, port: int) -> bool:
    server.check_running()
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_landlord_sets_a_tenants_own_limits_on_its_page_and_goes_back_to_the_plans(
    settings: Settings, superadmin_client: TestClient[Any]
) -> None:
    provision(settings, SLUG)
    ada = add_admin(settings, SLUG, "ada@harbour.example")
    add_member(settings, SLUG, "bo@harbour.example")
    bo = bearer(add_token(settings, "bo@harbour.example", SLUG))
    page = superadmin_client.get(f"/tenants/{SLUG}")
    assert "The Standard plan's" in page.text
    assert 'name="each_read" id="each_read" value="1200"' in page.text

    wrong = post_form(
        superadmin_client, f"/tenants/{SLUG}/rate-limits", {"tenant_read": "many", "each_read": "0"}
    )
    assert wrong.status_code == 422
    assert 'id="tenant_read-error" role="alert">A whole number of requests a minute' in wrong.text
    assert 'id="each_read-error"' in wrong.text
    assert 'value="many"' in wrong.text, "what was typed stays in the form"

    form = {"tenant_read": "", "each_read": "2", "tenant_write": "50"}
    answer = post_form(superadmin_client, f"/tenants/{SLUG}/rate-limits", form, follow_redirects=False)
    assert answer.status_code == 303
    [entry] = [entry for entry in trail(settings) if entry.action == "tenant.rate_limits"]
    assert entry.detail["before"]["each"] == {"read": 1200, "write": 300, "export": 20}
    assert entry.detail["after"] == {"tenant": {"write": 50}, "each": {"read": 2}}
    assert entry.detail["from_plan"] is False

    answers = [superadmin_client.get("/api/v1/tenant/units", headers=bo).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    page = superadmin_client.get(f"/tenants/{SLUG}")
    assert "Its own (not the plan's)" in page.text
    assert '<span id="rate-refusals">1 refused in the last 24 hours</span>' in page.text

    back = post_form(
        superadmin_client, f"/tenants/{SLUG}/rate-limits", {"from_plan": "1"}, follow_redirects=False
    )
    assert back.status_code == 303
    assert (
        run_db(
            settings, lambda session: session.scalar(select(Tenant.rate_limits).where(Tenant.slug == SLUG))
        )
        is None
    )
    *_, last = [entry for entry in trail(settings) if entry.action == "tenant.rate_limits"]
    assert last.detail["from_plan"] is True
    assert last.detail["after"]["each"]["read"] == 1200

    # The tenant's admin sees its limits and the day's refusals on the tenant's settings page.
    settings_page = signed_in(superadmin_client, ada).get(f"/t/{SLUG}/settings").text
    assert re.search(
        r'<tr id="rate-read"><td>Reads</td>\s*<td>6,000</td>\s*<td>1,200</td></tr>', settings_page
    )
    assert "1 request refused for going over these in the last 24 hours." in settings_page


def trail(settings: Settings) -> list[AuditEntry]:
    async def work(session: AsyncSession) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))

    return run_db(settings, work)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_caller_refused_on_the_api_is_refused_at_once_after_and_every_refusal_is_counted(
    settings: Settings,
) -> None:
    """The door: a token's next reads after a refusal get the same 429 (not a 200, not a 500) with
    its wait, and count among the tenant's refusals; the token's changes, and another member's
    reads, are not held at the door."""
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "ada@harbour.example")
    add_member(settings, SLUG, "bo@harbour.example")
    ada = bearer(add_token(settings, "ada@harbour.example", SLUG))
    bo = bearer(add_token(settings, "bo@harbour.example", SLUG))
    own_limits(settings, SLUG, TenantRates(tenant=Rates(read=100, write=100), each=Rates(read=2, write=5)))

    with portal(settings) as client:
        assert [client.get("/api/v1/tenant/units", headers=ada).status_code for _ in range(2)] == [200, 200]
        refused = [client.get("/api/v1/tenant/units", headers=ada) for _ in range(5)]
        for answer in refused:
            assert_refused(answer, 2, "reads")
            assert answer.headers["RateLimit-Policy"] == '"each-read";q=2;w=60'
            assert re.fullmatch(r'"each-read";r=0;t=\d+', answer.headers["RateLimit"])

        assert client.get("/api/v1/tenant/units", headers=bo).status_code == 200
        written = client.post("/api/v1/tenant/data/groups", json={"name": "Rowers"}, headers=ada)
        assert written.status_code == 201, written.text

        settings_page = signed_in(client, admin).get(f"/t/{SLUG}/settings").text
    assert "5 requests refused for going over these in the last 24 hours." in settings_page
