"""Switching into a tenant: superadmins, and landlord admins granted it, act as a tenant's admin
for a while, with a reason. The session id changes at every start and end, a banner says so on
every page, the switch runs out by itself, and its start, writes and end are in the audit trail."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import verify
from services.models import AuditEntry, PlatformRole, StoreEntry, Tenant, TenantStatus
from services.models.types import utcnow
from services.settings import Settings
from services.tenancy.switching import REASON_LIMIT
from tests.support import Credentials, csrf_token, post_form, run_db
from tests.web.portal import (
    HTMX,
    add_tenant,
    add_user,
    find_user,
    get_with_session,
    is_partial,
    portal,
    session_id,
)
from tests.web.test_access import assert_friendly_page, signed_in_as

REASON = "Ticket 4711: the treasurer cannot open the March ledger."


def active_tenant(settings: Settings, slug: str, name: str) -> Tenant:
    """A tenant as provisioning leaves it; switching needs no store, only an active tenant."""
    tenant = add_tenant(settings, slug, name)

    async def work(session: AsyncSession) -> None:
        found = await session.get(Tenant, tenant.id)
        assert found is not None
        found.status = TenantStatus.ACTIVE

    run_db(settings, work)
    return tenant


@pytest.fixture
def harbour(settings: Settings) -> Tenant:
    return active_tenant(settings, "harbour-club", "Harbour Club")


def trail(settings: Settings) -> list[AuditEntry]:
    async def work(session: AsyncSession) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))

    return run_db(settings, work)


def switch_entries(settings: Settings) -> list[AuditEntry]:
    return [entry for entry in trail(settings) if entry.action.startswith("switch.")]


def assert_trail_intact(settings: Settings) -> None:
    result = run_db(settings, verify)
    assert result.ok, result.problem


def switch_into(client: TestClient[Any], slug: str, reason: str = REASON, *, htmx: bool = False) -> Any:
    headers = HTMX if htmx else {}
    return post_form(
        client, f"/tenants/{slug}/switch", {"reason": reason}, headers=headers, follow_redirects=False
    )


def exit_switch(client: TestClient[Any]) -> Any:
    return post_form(client, "/switch/exit", {}, follow_redirects=False)


def user_id(settings: Settings, email: str) -> int:
    user = find_user(settings, email)
    assert user is not None, email
    return user.id


def banner(html: str) -> str | None:
    found = re.search(r'<div class="switch-banner" id="switch-banner".*?</div>', html, re.S)
    return found.group(0) if found else None


def let_the_switch_run_out(settings: Settings, client: TestClient[Any]) -> None:
    """What the clock would do: the stored switch's end moved into the past."""
    key = session_id(client)

    async def work(session: AsyncSession) -> None:
        entry = await session.get(StoreEntry, ("sessions", key))
        assert entry is not None
        data = json.loads(entry.value)
        data["switch"]["expires_at"] = (utcnow() - timedelta(seconds=1)).isoformat()
        entry.value = json.dumps(data).encode()

    run_db(settings, work)


# --- Starting --------------------------------------------------------------------------------


def test_a_superadmin_switches_in_with_a_reason_and_lands_in_the_tenant_portal(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    page = superadmin_client.get("/tenants/harbour-club")
    assert "<h2>Switch into this tenant</h2>" in page.text
    assert 'action="/tenants/harbour-club/switch"' in page.text

    response = switch_into(superadmin_client, "harbour-club")

    assert response.status_code == 303
    assert response.headers["location"] == "/t/harbour-club/"
    [start] = switch_entries(settings)
    assert (start.action, start.actor_email, start.tenant_id, start.target) == (
        "switch.start",
        "admin@localhost",
        harbour.id,
        "harbour-club",
    )
    assert start.actor_user_id is not None
    assert start.detail["reason"] == REASON
    assert start.ip


def test_over_htmx_a_switch_redirects_the_whole_page(
    superadmin_client: TestClient[Any], harbour: Tenant
) -> None:
    response = switch_into(superadmin_client, "harbour-club", htmx=True)

    assert response.headers["hx-redirect"] == "/t/harbour-club/"


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_a_blank_reason_is_refused_next_to_the_field_and_nothing_is_recorded(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant, htmx: bool
) -> None:
    before = trail(settings)[-1].seq
    cookie = session_id(superadmin_client)

    response = switch_into(superadmin_client, "harbour-club", " \n\t ", htmx=htmx)

    assert response.status_code == 422
    assert is_partial(response.text) is htmx
    if htmx:
        assert response.text.lstrip().startswith('<section id="switch-form"')
    else:
        assert "<h1>Harbour Club</h1>" in response.text
    assert (
        '<small class="field-error" id="reason-error">Say why you are switching into this tenant.</small>'
        in (response.text)
    )
    assert 'aria-invalid="true"' in response.text
    assert trail(settings)[-1].seq == before
    assert session_id(superadmin_client) == cookie
    assert banner(superadmin_client.get("/tenants").text) is None


def test_a_reason_that_shows_nothing_or_hides_control_characters_is_refused_next_to_the_field(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    for reason, error in [
        ("\u200b", "this reason shows nothing"),
        ("\u00a0\u2003\u0301\u200d", "this reason shows nothing"),
        ("Ticket 4711\x1b[8m hidden", "it holds a control character (U+001B)"),
        ("Ticket \u202e1174", "it holds a control character (U+202E)"),
    ]:
        response = switch_into(superadmin_client, "harbour-club", reason, htmx=True)

        assert response.status_code == 422, reason
        assert '<small class="field-error" id="reason-error">' in response.text
        assert error in response.text
    assert switch_entries(settings) == []


def test_a_reason_longer_than_the_limit_is_refused_and_kept_in_the_form(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    too_long = "x" * (REASON_LIMIT + 1)

    response = switch_into(superadmin_client, "harbour-club", too_long)

    assert response.status_code == 422
    assert f"Keep the reason within {REASON_LIMIT} characters" in response.text
    assert too_long in response.text
    assert switch_entries(settings) == []


def test_a_tenant_that_is_not_active_cannot_be_switched_into(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "new-club", "New Club")  # still provisioning

    assert "Switch into this tenant" not in superadmin_client.get("/tenants/new-club").text
    refused = switch_into(superadmin_client, "new-club")
    assert_friendly_page(refused, 409, "Conflict")
    assert "only an active tenant can be switched into" in refused.text
    assert_friendly_page(switch_into(superadmin_client, "no-such-club"), 404, "Not found")
    assert switch_entries(settings) == []


def test_a_landlord_admin_switches_only_after_a_superadmin_granted_it(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    lee_id = user_id(settings, lee.email)
    with portal(settings) as lee_browser:
        signed_in_as(lee_browser, lee)
        assert "Switch into this tenant" not in lee_browser.get("/tenants/harbour-club").text
        refused = switch_into(lee_browser, "harbour-club")
        assert_friendly_page(refused, 403, "Not allowed")
        assert "landlord admins granted it" in refused.text

        granted = post_form(superadmin_client, f"/users/{lee_id}/switching", {"allowed": "yes"})
        assert granted.status_code == 200
        assert "Revoke" in granted.text

        assert "Switch into this tenant" in lee_browser.get("/tenants/harbour-club").text
        allowed = switch_into(lee_browser, "harbour-club")
        assert allowed.status_code == 303
        assert allowed.headers["location"] == "/t/harbour-club/"

        post_form(superadmin_client, f"/users/{lee_id}/switching", {"allowed": "no"})
        after_revoking = lee_browser.get("/tenants")
        assert banner(after_revoking.text) is None
        assert_friendly_page(switch_into(lee_browser, "harbour-club"), 403, "Not allowed")

    grants = [entry for entry in trail(settings) if entry.action.startswith("user.switch_")]
    assert [(entry.action, entry.actor_email, entry.target) for entry in grants] == [
        ("user.switch_grant", "admin@localhost", lee.email),
        ("user.switch_revoke", "admin@localhost", lee.email),
    ]
    assert [
        (entry.action, entry.actor_email, entry.detail.get("cause")) for entry in switch_entries(settings)
    ] == [
        ("switch.start", lee.email, None),
        ("switch.end", lee.email, "revoked"),
    ]


def test_the_users_page_offers_the_grant_to_landlord_admins_only(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    admin_id = user_id(settings, "admin@localhost")

    page = superadmin_client.get("/users")
    assert "<th>Switches into tenants</th>" in page.text
    assert page.text.count('name="allowed" value="yes"') == 1
    assert "always" in page.text

    refused = post_form(superadmin_client, f"/users/{admin_id}/switching", {"allowed": "no"})
    assert refused.status_code == 422
    assert "always may switch into tenants" in refused.text
    assert post_form(superadmin_client, "/users/9999/switching", {"allowed": "yes"}).status_code == 404


# --- While switched --------------------------------------------------------------------------


def test_while_switched_every_page_shows_the_banner_with_the_tenant_and_an_exit(
    superadmin_client: TestClient[Any], harbour: Tenant
) -> None:
    switch_into(superadmin_client, "harbour-club")

    for path in ["/", "/tenants", "/tenants/harbour-club", "/audit", "/users", "/no/such/page"]:
        shown = banner(superadmin_client.get(path).text)
        assert shown is not None, path
        assert "<strong>Harbour Club</strong> <code>harbour-club</code>" in shown
        assert "30 minutes left" in shown
        assert 'action="/switch/exit"' in shown and 'name="_csrf_token"' in shown
    tenant_page = superadmin_client.get("/tenants/harbour-club").text
    assert "You are switched into <strong>Harbour Club</strong>" in tenant_page
    switch_form = tenant_page.split('id="switch-form"')[1].split("</section>")[0]
    assert 'name="reason"' not in switch_form, "no second switch while switched"


def test_a_write_while_switched_is_recorded_with_the_person_and_the_tenant(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    switch_into(superadmin_client, "harbour-club")

    created = post_form(superadmin_client, "/users", {"email": "robin@landlord.example"})
    refused = post_form(superadmin_client, "/users", {"email": "not-an-email"})
    superadmin_client.get("/tenants")
    exit_switch(superadmin_client)

    assert (created.status_code, refused.status_code) == (201, 422)
    switch_trail = switch_entries(settings)
    assert [entry.action for entry in switch_trail] == ["switch.start", "switch.write", "switch.end"]
    write = switch_trail[1]
    assert (write.actor_email, write.actor_user_id, write.tenant_id, write.target) == (
        "admin@localhost",
        switch_trail[0].actor_user_id,
        harbour.id,
        "harbour-club",
    )
    assert write.detail == {"method": "POST", "path": "/users"}
    assert switch_trail[2].detail["cause"] == "exit"
    assert_trail_intact(settings)


def test_exit_ends_the_switch_and_returns_to_the_landlord_tenant_page(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    switch_into(superadmin_client, "harbour-club")

    response = exit_switch(superadmin_client)

    assert response.status_code == 303
    assert response.headers["location"] == "/tenants/harbour-club"
    assert banner(superadmin_client.get("/tenants/harbour-club").text) is None
    end = switch_entries(settings)[-1]
    assert (end.action, end.actor_email, end.tenant_id) == ("switch.end", "admin@localhost", harbour.id)
    assert exit_switch(superadmin_client).headers["location"] == "/", "nothing left to exit"
    assert len(switch_entries(settings)) == 2


def test_signing_out_while_switched_ends_the_switch(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    switch_into(superadmin_client, "harbour-club")

    superadmin_client.post(
        "/logout", data={"_csrf_token": csrf_token(superadmin_client)}, follow_redirects=False
    )

    assert [(entry.action, entry.detail.get("cause")) for entry in switch_entries(settings)] == [
        ("switch.start", None),
        ("switch.end", "session_ended"),
    ]
    assert_trail_intact(settings)


def test_someone_else_signing_in_on_the_same_browser_does_not_inherit_the_switch(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    switch_into(superadmin_client, "harbour-club")

    signed_in_as(superadmin_client, lee)

    assert banner(superadmin_client.get("/tenants").text) is None
    assert [
        (entry.action, entry.actor_email, entry.detail.get("cause")) for entry in switch_entries(settings)
    ] == [
        ("switch.start", "admin@localhost", None),
        ("switch.end", "admin@localhost", "session_ended"),
    ]


# --- Session ids and expiry ------------------------------------------------------------------


def test_the_session_id_changes_when_a_switch_starts_ends_and_runs_out(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    signed_in = session_id(superadmin_client)

    switch_into(superadmin_client, "harbour-club")
    switched = session_id(superadmin_client)
    exit_switch(superadmin_client)
    exited = session_id(superadmin_client)
    switch_into(superadmin_client, "harbour-club")
    switched_again = session_id(superadmin_client)
    let_the_switch_run_out(settings, superadmin_client)
    superadmin_client.get("/tenants")
    ran_out = session_id(superadmin_client)

    ids = [signed_in, switched, exited, switched_again, ran_out]
    assert None not in ids and len(set(ids)) == len(ids)
    for old in ids[:-1]:
        assert get_with_session(superadmin_client, "/tenants", old or "").status_code in (302, 303)
    assert get_with_session(superadmin_client, "/tenants", ran_out or "").status_code == 200


def test_a_switch_that_ran_out_ends_by_itself_and_the_request_goes_on_unswitched(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    switch_into(superadmin_client, "harbour-club")
    let_the_switch_run_out(settings, superadmin_client)

    page = superadmin_client.get("/tenants")
    created = post_form(superadmin_client, "/users", {"email": "robin@landlord.example"})

    assert page.status_code == 200
    assert banner(page.text) is None
    assert created.status_code == 201
    switch_trail = switch_entries(settings)
    assert [entry.action for entry in switch_trail] == ["switch.start", "switch.expire"]
    expired = switch_trail[1]
    assert (expired.actor_email, expired.tenant_id, expired.detail["cause"]) == (
        "admin@localhost",
        harbour.id,
        "expired",
    )
    assert_trail_intact(settings)


def test_a_switch_with_no_minutes_left_ends_on_the_next_request(
    settings: Settings, superadmin: Credentials, harbour: Tenant
) -> None:
    with portal(dataclasses.replace(settings, switch_minutes=0)) as browser:
        signed_in_as(browser, superadmin)
        assert switch_into(browser, "harbour-club").status_code == 303
        assert banner(browser.get("/").text) is None

    assert [entry.action for entry in switch_entries(settings)] == ["switch.start", "switch.expire"]


def test_a_superadmin_opening_a_tenants_portal_without_switching_is_led_to_the_switch_not_recorded(
    superadmin_client: TestClient[Any], settings: Settings, harbour: Tenant
) -> None:
    page = superadmin_client.get("/t/harbour-club/")
    assert_friendly_page(page, 403, "Not allowed")
    assert "You are not switched into Harbour Club." in page.text
    assert 'href="/tenants/harbour-club#switch-form">Switch into Harbour Club</a>' in page.text
    assert not [entry for entry in trail(settings) if entry.action == "security.cross_tenant"]

    landlord_page = superadmin_client.get("/tenants/harbour-club").text
    assert 'href="/t/harbour-club/"' in landlord_page, "the tenant's page links its portal"
    switch_into(superadmin_client, "harbour-club")
    assert "You are not switched into" not in superadmin_client.get("/t/harbour-club/").text
