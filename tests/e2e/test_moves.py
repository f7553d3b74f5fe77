"""The superadmin moves a tenant in a real browser against a real `tenantry serve`: from the tenants
list to the tenant, "Move…", the shared store chosen and the slug typed, then the tenant page
follows the move's job to its end by itself and lists the move in its Moves panel. The move page,
the tenant page with its Moves panel and the move-back page pass the checks every page passes
(no sideways overflow at 1,280 or 390 px, no serious axe-core violation)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import off_the_loop
from tests.e2e.test_every_page import SCREENSHOTS, problems_on
from tests.e2e.test_landlord_portal import main_nav, sign_in
from tests.web.tenant_world import add_rows, add_units, provision
from tests.workers.support import tenant

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SLUG = "osprey-club"
NAME = "Osprey Club"
#: A move copies the tenant through a verified portable backup: more than a page load.
JOB_TIMEOUT_MS = 60_000


def test_superadmin_moves_a_tenant_into_the_shared_store_and_sees_the_move_in_its_panel(
    page: Page, server: Server, artifacts: Path
) -> None:
    off_the_loop(provision, server.settings, SLUG)
    units = off_the_loop(add_units, server.settings, SLUG, [("North", None)])
    off_the_loop(
        add_rows, server.settings, SLUG, "groups", [{"name": "Dawn Watchers", "unit_id": units["North"]}]
    )
    sign_in(page, server.superadmin)
    main_nav(page).get_by_role("link", name="Tenants").click()
    page.get_by_role("link", name=SLUG, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = problems_on(page, f"/tenants/{SLUG}/move")
    page.go_back()
    page.get_by_role("link", name="Move…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Move {NAME} to another kind of store")
    expect(page.locator("#move-from")).to_contain_text("a SQLite database")
    expect(page.locator("#move-meanwhile")).to_contain_text("maintenance page")
    page.get_by_role("radio", name=re.compile("the shared SQLite store")).check()
    page.get_by_label(f"Type {SLUG} to confirm").fill(SLUG)
    page.screenshot(path=str(artifacts / "move-confirmation.png"), full_page=True)
    page.locator("main form button[type=submit]").click()

    # The tenant page follows the move's job and shows it in the Moves panel once it is done.
    expect(page).to_have_url(f"{server.base_url}/tenants/{SLUG}")
    moved = page.locator("#move-list tr[data-move]")
    expect(moved).to_contain_text("kept until", timeout=JOB_TIMEOUT_MS)
    expect(moved).to_have_count(1)
    expect(moved).to_contain_text("a SQLite database → the shared SQLite store")
    expect(moved).to_contain_text("succeeded")
    expect(moved.get_by_role("link", name="Move back…")).to_be_visible()
    expect(page.locator("#tenant-progress h2").first).to_contain_text("Move job")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#tenant-status")).to_have_text("active")
    page.screenshot(path=str(artifacts / "move-done.png"), full_page=True)
    assert off_the_loop(tenant, server.settings, SLUG).isolation == "shared"
    back = moved.get_by_role("link", name="Move back…").get_attribute("href")
    assert back is not None
    problems += problems_on(page, f"/tenants/{SLUG}") + problems_on(page, back)
    assert not problems, "\n".join(problems)
