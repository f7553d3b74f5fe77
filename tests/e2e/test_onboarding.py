"""A new tenant's way in, end to end in a browser: the landlord creates it with its first admin, who
signs in with the password they were given, chooses their own, and invites a member, who does the
same and lands in the tenant. Every page on the way fits a 1,280 px and a 390 px wide window."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.e2e.test_landlord_portal import sign_in
from tests.support import Credentials

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}


def assert_fits(page: Page) -> None:
    """Nothing on the page reaches past the window's right edge (no sideways scrolling), at the
    window's width and at a phone's."""
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page.url} is {overflow} px wider than a {size['width']} px window"
    page.set_viewport_size(WIDE)


def chooses_own_password(page: Page, given: Credentials) -> Credentials:
    """At the first sign-in, the account page asks for a password of their own before anything else."""
    expect(page.locator("#choose-password")).to_be_visible()
    assert_fits(page)
    own = Credentials(given.email, "a password of my own")
    form = page.locator("#password-form")
    form.get_by_label("Current password").fill(given.password)
    form.get_by_label(re.compile(r"^New password at least")).fill(own.password)
    form.get_by_label("New password again").fill(own.password)
    form.get_by_role("button", name="Change password").click()
    return own


def test_a_new_tenant_from_the_landlords_form_to_its_first_member(
    browser: Browser, page: Page, server: Server
) -> None:
    # The landlord creates Heron Club and names Ada as its first admin.
    sign_in(page, server.superadmin)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    page.goto("/tenants/new")
    assert_fits(page)
    form = page.locator("#new-tenant-form")
    form.get_by_label("Slug").fill("heron-club")
    form.get_by_label("Name", exact=True).fill("Heron Club")
    with page.expect_response(re.compile(r"/tenants/new/modules")):
        form.get_by_label("Template").select_option("community_group")
    form.get_by_label("Admin's email").fill("ada@heron.example")
    form.get_by_label("Admin's name").fill("Ada Lovelace")
    form.get_by_role("button", name="Create tenant").click()

    expect(page.locator("#first-admin-email")).to_have_text("ada@heron.example")
    ada_given = Credentials("ada@heron.example", page.locator("#first-admin-password").inner_text())
    assert len(ada_given.password) >= 12
    assert_fits(page)
    page.locator("#to-tenant").click()
    expect(page.locator("#tenant-status")).to_have_text("active", timeout=60_000)
    expect(page.locator('#tenant-admins tr[data-admin="ada@heron.example"] [data-signed-in]')).to_have_text(
        "not yet"
    )
    assert ada_given.password not in page.content(), "the password was shown once"
    assert_fits(page)

    # Ada signs in with what she was given, chooses her own password and lands in Heron Club.
    ada_context = browser.new_context(base_url=server.base_url, viewport=WIDE)
    ada = ada_context.new_page()
    try:
        sign_in(ada, ada_given)
        expect(ada).to_have_url(re.compile(r"/account\?next=/$"))
        chooses_own_password(ada, ada_given)
        expect(ada).to_have_url(re.compile(r"/t/heron-club/$"))
        assert_fits(ada)

        # She invites Ben as a member.
        ada.locator("nav.tenant-nav").get_by_role("link", name="People").click()
        expect(ada).to_have_url(re.compile(r"/t/heron-club/people$"))
        assert_fits(ada)
        invite = ada.locator("main form", has=ada.get_by_role("button", name="Invite"))
        invite.get_by_label("Email").fill("ben@heron.example")
        invite.get_by_label("Name").fill("Ben Okri")
        invite.get_by_role("button", name="Invite").click()
        ben_given = Credentials("ben@heron.example", ada.locator("#temporary-password").inner_text())
        assert_fits(ada)
    finally:
        ada_context.close()

    # Ben signs in, chooses his own password and lands in the tenant, as a member.
    ben_context = browser.new_context(base_url=server.base_url, viewport=WIDE)
    ben = ben_context.new_page()
    try:
        sign_in(ben, ben_given)
        ben_own = chooses_own_password(ben, ben_given)
        expect(ben).to_have_url(re.compile(r"/t/heron-club/$"))
        expect(ben.locator("nav.tenant-nav").get_by_role("link", name="People")).to_have_count(0)
        assert_fits(ben)
        ben_context.clear_cookies()
        sign_in(ben, ben_given)
        expect(ben.locator("#login-form [role=alert]")).to_be_visible()
        ben_context.clear_cookies()
        sign_in(ben, ben_own)
        expect(ben).to_have_url(re.compile(r"/t/heron-club/$"))
    finally:
        ben_context.close()

    # The landlord sees that Heron Club's admin has signed in.
    page.reload()
    expect(
        page.locator('#tenant-admins tr[data-admin="ada@heron.example"] [data-signed-in]')
    ).to_contain_text("last on")
