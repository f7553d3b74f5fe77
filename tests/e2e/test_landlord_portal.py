"""The landlord portal in a real browser against a real `tenantry serve`: signing in and out,
creating a landlord admin, what a landlord admin may see, and the HTMX swaps that must happen in
place (no page load). Screenshots land in test-artifacts/ for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect

from services.tenancy.tenants import register_tenant
from tests.support import Credentials
from web.account.controller import WRONG_CREDENTIALS

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

NEW_ADMIN_EMAIL = "ops@example.org"
#: Set on `window` before an HTMX action; still there afterwards only when the page did not reload.
NO_RELOAD_MARK = "__tenantryNoReload"


def mark_page(page: Page) -> None:
    page.evaluate(f"window.{NO_RELOAD_MARK} = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate(f"window.{NO_RELOAD_MARK} === true"), "the page reloaded instead of swapping"


def sign_in(page: Page, credentials: Credentials) -> None:
    page.goto("/login")
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(credentials.email)
    form.get_by_label("Password").fill(credentials.password)
    form.get_by_role("button", name="Sign in").click()


def main_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def test_superadmin_creates_a_landlord_admin_who_then_signs_in(
    page: Page, server: Server, artifacts: Path
) -> None:
    # The superadmin signs in through the form and lands on the dashboard.
    sign_in(page, server.superadmin)
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator(".topbar .who")).to_contain_text(server.superadmin.email)
    expect(page.locator(".card").filter(has_text="Health")).to_contain_text("landlord database")
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    # Users: create a landlord admin with the HTMX form; the password is shown once, in place.
    main_nav(page).get_by_role("link", name="Users").click()
    expect(page).to_have_url(f"{server.base_url}/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Landlord staff")
    mark_page(page)
    panel = page.locator("#users-panel")
    panel.get_by_label("Email").fill(NEW_ADMIN_EMAIL)
    panel.get_by_role("button", name="Create landlord admin").click()
    created = panel.get_by_role("status")
    expect(created).to_contain_text(NEW_ADMIN_EMAIL)
    expect(created).to_contain_text("shown only once")
    password = page.locator("code.secret").inner_text().strip()
    assert len(password) >= 12, password
    assert_not_reloaded(page)
    staff = panel.get_by_role("row").filter(has_text=NEW_ADMIN_EMAIL)
    expect(staff).to_contain_text("landlord admin")
    expect(panel.get_by_label("Email")).to_have_value("")
    page.screenshot(path=str(artifacts / "users-after-create.png"), full_page=True)

    # Shown once: the page loaded again no longer carries it.
    page.reload()
    expect(page.get_by_role("row").filter(has_text=NEW_ADMIN_EMAIL)).to_be_visible()
    expect(page.locator("code.secret")).to_have_count(0)
    assert password not in page.content()

    # Signing out leads back to the sign-in page; the portal is closed again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.base_url}/login")
    page.goto("/users")
    expect(page).to_have_url(f"{server.base_url}/login?next=/users")

    # A wrong password: the error appears inline, swapped by HTMX, and the email is kept.
    page.goto("/login")
    mark_page(page)
    new_admin = Credentials(NEW_ADMIN_EMAIL, password)
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(new_admin.email)
    form.get_by_label("Password").fill(password + "-wrong")
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-form").get_by_role("alert")).to_have_text(WRONG_CREDENTIALS)
    assert_not_reloaded(page)
    expect(page).to_have_url(f"{server.base_url}/login")
    expect(page.locator("#login-form").get_by_label("Email")).to_have_value(new_admin.email)
    # The cursor waits in the emptied password field (htmx focuses it once the swap settles).
    expect(page.locator("#login-form").get_by_label("Password")).to_have_value("")
    expect(page.locator("#login-form").get_by_label("Password")).to_be_focused()

    # The right password, in the swapped-in form: the landlord admin's dashboard. Users is there for
    # password resets, without the form that makes staff.
    page.locator("#login-form").get_by_label("Password").fill(password)
    page.locator("#login-form").get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator(".topbar .who")).to_contain_text(NEW_ADMIN_EMAIL)
    expect(main_nav(page).get_by_role("link", name="Tenants")).to_be_visible()
    expect(page.get_by_role("link", name="Manage users")).to_have_count(0)
    main_nav(page).get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Landlord staff")
    expect(page.get_by_role("button", name="Create landlord admin")).to_have_count(0)


TENANTS = [
    ("acme-corp", "Acme Corporation"),
    ("globex", "Globex"),
    ("initech", "Initech"),
]


def test_tenant_search_updates_the_table_in_place(
    page: Page, server: Server, in_server_db: Callable[[Any], Any], artifacts: Path
) -> None:
    async def add_tenants(session: Any) -> None:
        for slug, name in TENANTS:
            await register_tenant(session, slug=slug, name=name, template="non-profit", isolation="database")

    in_server_db(add_tenants)
    sign_in(page, server.superadmin)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")

    main_nav(page).get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tenants")
    table = page.locator("#tenant-table")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(len(TENANTS))
    expect(table.get_by_role("navigation", name="Pages")).to_contain_text("3 tenants")

    mark_page(page)
    search = page.get_by_role("searchbox", name="Search tenants")
    search.press_sequentially("glob")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Globex")
    expect(table.get_by_role("navigation", name="Pages")).to_contain_text("1 tenant ")
    expect(page).to_have_url(re.compile(r"/tenants\?q=glob(&|$)"))

    search.fill("corporation")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("acme-corp")

    search.fill("nobody-here")
    expect(table.locator(".empty")).to_contain_text("No tenant matches “nobody-here”.")
    expect(rows).to_have_count(0)

    search.fill("")
    expect(rows).to_have_count(len(TENANTS))
    assert_not_reloaded(page)
    page.screenshot(path=str(artifacts / "tenants.png"), full_page=True)
