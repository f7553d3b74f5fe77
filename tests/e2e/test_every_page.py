"""The pages of both portals as a landlord's superadmin, a tenant's admin and a member see them, in
a real browser: none reaches past the window's edge at 1,280 px or at a phone's 390 px, and axe-core
finds no serious or critical accessibility violation on any of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.e2e.conftest import ARTIFACTS, off_the_loop
from tests.e2e.test_landlord_portal import sign_in
from tests.support import Credentials
from tests.web.portal import add_token
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
SIZES: list[ViewportSize] = [{"width": 1280, "height": 800}, {"width": 390, "height": 844}]
#: What a person relying on a screen reader or a keyboard could not get past.
BLOCKING = {"serious", "critical"}
SLUG = "kestrel-trust"
#: A backup is a job with a verification inside: more than a page load.
JOB_TIMEOUT_MS = 60_000
SCREENSHOTS = ARTIFACTS / "pages"


def problems_on(page: Page, path: str) -> list[str]:
    """What is wrong with the page at `path`: sideways overflow at either width, and axe-core's
    serious and critical violations (each with the elements it found them on). Each width's
    screenshot is kept in test-artifacts/pages/, for a person to look at."""
    page.goto(path)
    expect(page.locator("main")).to_be_visible()
    found = []
    for size in SIZES:
        page.set_viewport_size(size)
        shot = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
        page.screenshot(path=str(SCREENSHOTS / f"{shot}-{size['width']}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                     .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                     .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                                          + (e.className ? '.' + String(e.className).split(' ')[0] : ''))"""
            )
            found.append(f"{path}: {overflow} px too wide at {size['width']} px ({', '.join(wide)})")
    page.set_viewport_size(SIZES[0])
    page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    for violation in results["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            found.append(f"{path}: {violation['id']} ({violation['impact']}): {', '.join(targets)}")
    return found


def signed_in_page(browser: Browser, server: Server, person: Credentials) -> Page:
    context = browser.new_context(base_url=server.base_url, viewport=SIZES[0])
    page = context.new_page()
    sign_in(page, person)
    expect(page).not_to_have_url(re.compile(r"/login"))
    return page


def test_the_keyboard_skips_to_the_content_and_its_focus_shows_on_the_dark_top_bar(
    browser: Browser, server: Server
) -> None:
    staff = signed_in_page(browser, server, server.superadmin)
    staff.goto("/tenants")
    staff.keyboard.press("Tab")
    skip = staff.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    staff.keyboard.press("Tab")
    brand = staff.locator(".topbar .brand")
    expect(brand).to_be_focused()
    outline = brand.evaluate("e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineColor]")
    assert outline == ["solid", "rgb(255, 255, 255)"], "a white ring on the dark bar"
    staff.keyboard.press("Shift+Tab")
    staff.keyboard.press("Enter")
    expect(staff.locator("main")).to_be_focused()


def test_every_page_fits_both_widths_and_passes_axe(browser: Browser, page: Page, server: Server) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    off_the_loop(lambda: provision(server.settings, SLUG, modules=["events"]))
    units = off_the_loop(add_units, server.settings, SLUG, [("North", None), ("Harbour", "North")])
    group, *_ = off_the_loop(
        add_rows, server.settings, SLUG, "groups", [{"name": "Dawn Watchers", "unit_id": units["Harbour"]}]
    )
    admin = off_the_loop(add_admin, server.settings, SLUG, f"admin@{SLUG}.example")
    member = off_the_loop(
        lambda: add_member(server.settings, SLUG, f"member@{SLUG}.example", unit_ids=[units["North"]])
    )

    off_the_loop(add_token, server.settings, server.superadmin.email)  # a row on /account/tokens
    problems = problems_on(page, "/login")
    staff = signed_in_page(browser, server, server.superadmin)
    for path in [
        "/",
        "/tenants",
        "/tenants?status=active&sort=name&order=asc",
        "/jobs",
        "/tenants/new",
        f"/tenants/{SLUG}",
        f"/tenants/{SLUG}/split",
        f"/tenants/{SLUG}/split?unit={units['North']}&into=north-split",
        f"/tenants/{SLUG}/merge",
        "/fleet",
        "/rollouts",
        "/rollouts/new",
        "/move-plans",
        "/move-plans/new",
        "/audit",
        "/users",
        f"/users?email=admin@{SLUG}.example",
        "/account",
        "/account/tokens",
        "/account/sessions",
    ]:
        problems += problems_on(staff, path)

    tenant_admin = signed_in_page(browser, server, admin)
    tenant_admin.goto(f"/t/{SLUG}/backups")
    tenant_admin.locator("#back-up-now").click()
    verified = tenant_admin.locator("#backup-list tr[data-backup] [data-verification]")
    expect(verified).to_have_text("verified", timeout=JOB_TIMEOUT_MS)
    expect(tenant_admin.locator("#backups-notice")).to_have_count(0)  # "…is queued" no longer
    for path in [
        "",
        "/data",
        "/data/groups",
        "/data/groups/new",
        f"/data/groups/{group}",
        f"/data/groups/{group}/edit",
        "/people",
        "/units",
        "/modules",
        "/backups",
        "/settings",
        "/audit",
    ]:
        problems += problems_on(tenant_admin, f"/t/{SLUG}/{path.lstrip('/')}")

    tenant_member = signed_in_page(browser, server, member)
    for path in ["", "/data", "/data/groups"]:
        problems += problems_on(tenant_member, f"/t/{SLUG}/{path.lstrip('/')}")

    # The trail now holds the backup's entries, with their long hashes.
    problems += problems_on(staff, "/audit")
    problems += problems_on(staff, f"/tenants/{SLUG}")
    assert not problems, "\n".join(problems)
