"""A superadmin switches into a tenant in a real browser, changes something there, exits, and finds
the switch, the change and the exit on the audit trail."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_landlord_portal import sign_in
from tests.web.tenant_world import provision

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

REASON = "Ticket 4711: the club cannot find its allotments unit"


def test_superadmin_switches_in_renames_a_unit_exits_and_the_audit_shows_it(
    page: Page, server: Server, artifacts: Path
) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:  # Playwright's loop owns this thread
        pool.submit(provision, server.settings, "switch-club").result(timeout=120)
    sign_in(page, server.superadmin)
    expect(page).to_have_url(f"{server.base_url}/")
    page.goto("/tenants/switch-club")

    # A reason is required; then the switch lands in the tenant's portal with the banner on top.
    form = page.locator("#switch-form")
    form.get_by_label("Reason").fill(REASON)
    form.get_by_role("button", name="Switch into Switch Club").click()
    expect(page).to_have_url(re.compile(r"/t/switch-club/$"))
    banner = page.locator("#switch-banner")
    expect(banner).to_contain_text("Switch Club")
    expect(banner).to_contain_text(re.compile(r"\d+ minutes? left"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Switch Club")
    page.screenshot(path=str(artifacts / "switched-into-tenant.png"), full_page=True)

    # Acting as the tenant's admin: rename the root unit.
    page.get_by_role("navigation", name="Switch Club").get_by_role("link", name="Units").click()
    page.get_by_label("New name for Switch Club").fill("Switch Club HQ")
    page.locator("#units form").first.get_by_role("button", name="Rename").click()
    expect(page.locator("#units")).to_contain_text("Switch Club HQ")
    expect(banner).to_be_visible()
    page.screenshot(path=str(artifacts / "switched-renamed-unit.png"), full_page=True)

    # Whatever accent the tenant chose (its appearance stylesheet sets --accent), the way out
    # keeps the landlord's colours.
    page.add_style_tag(content=":root { --accent: #ff00ff; --accent-ink: #000; }")
    exit_button = banner.get_by_role("button", name="Exit")
    assert exit_button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 36, 51)"

    # Exit: back on the landlord's page for the tenant, no banner.
    exit_button.click()
    expect(page).to_have_url(re.compile(r"/tenants/switch-club$"))
    expect(page.locator("#switch-banner")).to_have_count(0)

    # The audit trail shows the start (with the reason), the write and the end.
    page.goto("/audit?tenant=switch-club")
    table = page.locator("#audit-table")
    for action in ("switch.start", "switch.write", "switch.end"):
        expect(table.locator("tr", has_text=action)).to_have_count(1)
    expect(table.locator("tr", has_text="switch.start")).to_contain_text(REASON)
    expect(table.locator("tr", has_text="switch.write")).to_contain_text("/t/switch-club/units/")
    page.screenshot(path=str(artifacts / "switch-audit-trail.png"), full_page=True)
