"""A tenant's admin in a real browser against a real `tenantry serve`: backs the tenant up, deletes a
row, restores the backup and finds the row again; enables a module, fills in its tables, disables it
keeping the data, enables it again and finds the same rows, then drops its data and finds its
tables gone and the backup taken first listed, verified. Jobs run on the server's embedded worker;
the pages follow them by themselves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import off_the_loop
from tests.support import Credentials
from tests.web.tenant_world import add_admin, provision
from tests.workers.support import table_names, tenant

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

#: Backups, restores and module changes are jobs with a verification inside: more than a page load.
JOB_TIMEOUT_MS = 60_000
VENUES = ["Town Hall", "Old Mill"]
EVENTS_TABLES = {"venues", "events", "event_registrations"}


def new_tenant_with_admin(server: Server, slug: str) -> Credentials:
    """A community group with no module, provisioned as a worker would, and its admin."""
    off_the_loop(provision, server.settings, slug)
    return off_the_loop(add_admin, server.settings, slug, f"admin@{slug}.example")


def sign_in_to_portal(page: Page, person: Credentials, slug: str) -> None:
    page.goto(f"/login?next=/t/{slug}/")
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(person.email)
    form.get_by_label("Password").fill(person.password)
    form.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))


def store_tables(server: Server, slug: str) -> set[str]:
    """The tables in the tenant's own store, as the server's workers open it."""
    found = off_the_loop(tenant, server.settings, slug)
    return set(off_the_loop(table_names, server.settings, found))


def portal_nav(page: Page) -> Locator:
    return page.locator("nav.tenant-nav")


def data_tables(page: Page) -> Locator:
    """The list of tables on the Data page."""
    portal_nav(page).get_by_role("link", name="Data").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data")
    return page.locator("ul.table-list")


def open_table(page: Page, title: str) -> None:
    data_tables(page).get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)


def add_row(page: Page, table_title: str, name: str) -> int:
    """A row added through the table's form, by its name; its id, read from the page it lands on."""
    open_table(page, table_title)
    page.get_by_role("link", name="Add a row").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Add row").click()
    expect(page.locator("dl.record")).to_contain_text(name)
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def module_row(page: Page, module: str) -> Locator:
    return page.locator(f"#module-{module}")


def module_job_succeeded(page: Page) -> None:
    """On the job page a module change lands on, which follows the job by itself."""
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)


def back_to_modules(page: Page) -> None:
    page.locator("#back-to-modules").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Modules")


def disable_module(page: Page, module: str, *, keep_data: bool) -> None:
    """From the modules page, through the confirmation that says a backup is taken first."""
    page.locator(f"#disable-{module}").click()
    expect(page.locator("#backup-first")).to_contain_text("First, a backup")
    page.locator("#keep-data" if keep_data else "#drop-data").check()
    page.locator("#confirm-disable").click()


def test_tenant_admin_backs_up_deletes_a_row_restores_and_sees_it_again(
    page: Page, server: Server, artifacts: Path
) -> None:
    slug = "kestrel-club"
    admin = new_tenant_with_admin(server, slug)
    sign_in_to_portal(page, admin, slug)
    group_id = add_row(page, "Groups", "Dawn Watchers")
    open_table(page, "Groups")
    expect(page.locator("#records")).to_contain_text("Dawn Watchers")

    # Back up now: the page follows the job until the backup is listed, verified.
    portal_nav(page).get_by_role("link", name="Backups").click()
    expect(page.get_by_text("No backups of Kestrel Club yet.")).to_be_visible()
    page.locator("#back-up-now").click()
    expect(page.locator("#backups-notice")).to_be_visible()
    backup = page.locator("#backup-list tr[data-backup]")
    expect(backup).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    expect(backup.locator("[data-verification]")).to_have_text("verified", timeout=JOB_TIMEOUT_MS)
    expect(backup).to_contain_text("succeeded")
    backup_id = int(backup.get_attribute("data-backup") or "")
    page.screenshot(path=str(artifacts / "tenant-backup-verified.png"), full_page=True)

    # Delete the row, after its confirmation: it is gone from the list.
    page.goto(f"/t/{slug}/data/groups/{group_id}")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete this row of groups?")
    page.get_by_role("button", name=f"Delete #{group_id}").click()
    expect(page.get_by_role("status")).to_have_text(f"Row #{group_id} was deleted.")
    expect(page.locator("#records")).not_to_contain_text("Dawn Watchers")
    expect(page.locator("#records")).to_contain_text("There are no groups in view.")

    # Restore the backup after typing the slug; the page follows the restore through maintenance.
    portal_nav(page).get_by_role("link", name="Backups").click()
    page.locator(f"#restore-{backup_id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Restore Kestrel Club from backup #{backup_id}"
    )
    page.locator("#confirm").fill(slug)
    page.screenshot(path=str(artifacts / "tenant-restore-confirmation.png"), full_page=True)
    page.locator("#confirm-restore").click()
    last_restore = page.locator("#last-restore")
    expect(last_restore).to_contain_text(f"The restore from backup #{backup_id}", timeout=JOB_TIMEOUT_MS)
    expect(last_restore).to_contain_text("finished")
    expect(last_restore).to_contain_text("Kestrel Club's data is as it was")
    page.screenshot(path=str(artifacts / "tenant-restore-finished.png"), full_page=True)

    # The row is back.
    open_table(page, "Groups")
    expect(page.locator("#records").get_by_role("link", name=str(group_id), exact=True)).to_be_visible()
    expect(page.locator("#records")).to_contain_text("Dawn Watchers")


def test_tenant_admin_enables_a_module_keeps_its_data_on_disable_and_drops_it_behind_a_backup(
    page: Page, server: Server, artifacts: Path
) -> None:
    slug = "wren-club"
    admin = new_tenant_with_admin(server, slug)
    sign_in_to_portal(page, admin, slug)
    expect(data_tables(page)).not_to_contain_text("Venues")

    # Enable Events: its tables appear on the data pages; two venues are added.
    portal_nav(page).get_by_role("link", name="Modules").click()
    expect(module_row(page, "events")).to_have_attribute("data-status", "available")
    page.locator("#enable-events").click()
    module_job_succeeded(page)
    back_to_modules(page)
    expect(module_row(page, "events")).to_have_attribute("data-status", "enabled")
    tables = data_tables(page)
    for title in ("Venues", "Events", "Event registrations"):
        expect(tables.get_by_role("link", name=title, exact=True)).to_be_visible()
    for venue in VENUES:
        add_row(page, "Venues", venue)
    open_table(page, "Venues")
    expect(page.locator("#records tbody tr")).to_have_count(len(VENUES))

    # Disable, keeping the data: hidden from the data pages, still in the store.
    portal_nav(page).get_by_role("link", name="Modules").click()
    disable_module(page, "events", keep_data=True)
    module_job_succeeded(page)
    back_to_modules(page)
    expect(module_row(page, "events")).to_have_attribute("data-status", "kept")
    page.screenshot(path=str(artifacts / "tenant-module-kept.png"), full_page=True)
    expect(data_tables(page)).not_to_contain_text("Venues")
    assert store_tables(server, slug) >= EVENTS_TABLES, "kept data stays in the store"

    # Enable it again: the same venues are back.
    portal_nav(page).get_by_role("link", name="Modules").click()
    expect(page.locator("#enable-events")).to_have_text("Enable again")
    page.locator("#enable-events").click()
    module_job_succeeded(page)
    back_to_modules(page)
    expect(module_row(page, "events")).to_have_attribute("data-status", "enabled")
    open_table(page, "Venues")
    rows = page.locator("#records tbody tr")
    expect(rows).to_have_count(len(VENUES))
    for venue in VENUES:
        expect(rows.filter(has_text=venue)).to_have_count(1)

    # Disable, dropping the data: the tables are gone; the job names the backup it took first.
    portal_nav(page).get_by_role("link", name="Modules").click()
    disable_module(page, "events", keep_data=False)
    module_job_succeeded(page)
    dropped = page.locator('#job-steps li[data-step="drop data"] .detail')
    expect(dropped).to_contain_text("its tables are gone")
    named = re.search(r"backup #(\d+) holds its data", dropped.inner_text())
    assert named, "the drop names the backup that holds the data"
    backup_id = int(named.group(1))
    page.screenshot(path=str(artifacts / "tenant-module-dropped.png"), full_page=True)
    back_to_modules(page)
    expect(module_row(page, "events")).to_have_attribute("data-status", "available")
    expect(data_tables(page)).not_to_contain_text("Venues")
    assert not store_tables(server, slug) & EVENTS_TABLES, "dropped tables are gone from the store"

    # The backup taken before the drop is listed on the Backups page, verified.
    portal_nav(page).get_by_role("link", name="Backups").click()
    backup = page.locator(f'#backup-list tr[data-backup="{backup_id}"]')
    expect(backup).to_contain_text("safety backup before disabling events")
    expect(backup.locator("[data-verification]")).to_have_text("verified")
    expect(page.locator(f"#restore-{backup_id}")).to_be_visible()
