"""The tenant's settings and usage page: mistakes shown on their fields with nothing changed; a
saved name that the landlord sees too, a timezone the portal's dates follow, an accent colour on
every page; and usage (people, storage, rows per module) that matches what the tenant holds."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Plan, Tenant
from services.settings import Settings
from tests.support import Credentials, post_form, run_db, signed_in
from tests.web.portal import assert_no_trace, portal
from tests.web.tenant_world import add_admin, add_member, add_rows, provision
from tests.workers.support import tenant

SLUG = "garden-club"
SETTINGS = f"/t/{SLUG}/settings"
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def landlord_view(settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    """The tenant's name in the landlord database, and the settings changes on the audit trail."""

    async def work(session: AsyncSession) -> tuple[str, list[dict[str, Any]]]:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == SLUG))
        assert tenant is not None
        changes = await session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "tenant.setting")
        )
        return tenant.name, list(changes)

    return run_db(settings, work)


def field_errors(page: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="field-error" id="([a-z-]+)-error">([^<]+)</small>', page))


@ON_SQLITE
def test_settings_mistakes_are_shown_on_their_fields_and_nothing_is_changed(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    with portal(settings) as client:
        signed_in(client, admin)
        refused = post_form(
            client, SETTINGS, {"name": "  ", "timezone": "Mars/Olympus", "accent_colour": "blue"}
        )
        assert refused.status_code == 422
        assert_no_trace(refused.text)
        assert field_errors(refused.text) == {
            "name": "Give the tenant a name.",
            "timezone": "&#39;Mars/Olympus&#39; is not a timezone; use a name like Europe/Paris or UTC.",
            "accent-colour": "An accent colour is # and six hex digits, like #2f5bd3.",
        }
        assert 'value="Mars/Olympus"' in refused.text, "what was typed stays in the form"
        one_wrong = post_form(
            client, SETTINGS, {"name": "Gardeners", "timezone": "UTC", "accent_colour": "#12345"}
        )
        assert one_wrong.status_code == 422 and set(field_errors(one_wrong.text)) == {"accent-colour"}

        page = client.get(SETTINGS).text
        assert 'id="name" name="name" value="Garden Club"' in page and 'value="#2f5bd3"' in page
    assert landlord_view(settings) == ("Garden Club", [])


@ON_SQLITE
def test_saved_settings_rename_the_tenant_for_the_landlord_set_its_timezone_and_colour_its_portal(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    member = add_member(settings, SLUG, "member@garden.example")
    with portal(settings) as client:
        signed_in(client, admin)
        home = client.get(f"/t/{SLUG}/").text
        assert f'href="/t/{SLUG}/settings/appearance.css"' in home and 'id="nav-settings"' in home
        saved = post_form(
            client,
            SETTINGS,
            {"name": "Gardeners of the Vale", "timezone": "Pacific/Auckland", "accent_colour": "#F5D000"},
            follow_redirects=False,
        )
        assert saved.status_code == 303 and saved.headers["location"] == SETTINGS
        assert "<strong>Gardeners of the Vale</strong>" in client.get(f"/t/{SLUG}/").text
        assert "(Pacific/Auckland)" in client.get(f"/t/{SLUG}/people").text

        signed_in(client, member)
        assert client.get(SETTINGS).status_code == 403
        assert (
            post_form(
                client, SETTINGS, {"name": "Mine now", "timezone": "UTC", "accent_colour": "#000000"}
            ).status_code
            == 403
        )
        stylesheet = client.get(f"/t/{SLUG}/settings/appearance.css")
        assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")
        assert "--accent: #f5d000;" in stylesheet.text and "--accent-ink: #1d2433;" in stylesheet.text, (
            "dark text on a light accent"
        )

    name, changes = landlord_view(settings)
    assert name == "Gardeners of the Vale"
    assert sorted((change["setting"], change["from"], change["to"]) for change in changes) == [
        ("accent_colour", "#2f5bd3", "#f5d000"),
        ("name", "Garden Club", "Gardeners of the Vale"),
        ("timezone", "UTC", "Pacific/Auckland"),
    ]


def _row(page: str, row_id: str) -> list[str]:
    """The cells of the usage table's row `row_id`, as text."""
    row = page.split(f'id="{row_id}"')[1].split("</tr>")[0]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


@pytest.mark.parametrize("isolation", ["database", "shared"])
def test_usage_shows_what_the_tenant_uses_against_its_plan(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, SLUG, modules=["events"], isolation=isolation)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example")
    add_rows(settings, SLUG, "groups", [{"name": "Roses"}, {"name": "Tulips"}])
    add_rows(settings, SLUG, "venues", [{"name": "Village hall", "seats": 80}])

    async def small_plan(session: AsyncSession) -> None:
        session.add(
            Plan(key="small", name="Small", modules=None, max_modules=3, max_users=5, max_storage_mb=100)
        )
        await session.flush()
        await session.execute(update(Tenant).where(Tenant.slug == SLUG).values(plan_key="small"))

    run_db(settings, small_plan)
    with portal(settings) as client:
        page = signed_in(client, admin).get(SETTINGS)
        assert page.status_code == 200, page.text
        usage = page.text.split('id="usage"')[1]
        assert "of the Small plan" in usage
        assert _row(usage, "usage-people") == ["Active people", "2", "5", "40%"]
        assert _row(usage, "usage-modules") == ["Enabled modules", "1", "3", "33%"]
        template, events = _row(usage, "rows-template-community_group"), _row(usage, "rows-module-events")
        assert template[0] == "Community group template" and template[2] == "2" and "groups 2" in template[1]
        assert events[0] == "Events module" and events[2] == "1" and "venues 1" in events[1]
        storage = _row(usage, "usage-storage")
        if isolation == "shared":
            assert storage == [
                "Storage",
                "Not measured: Garden Club shares its store with other tenants, so only its rows are counted.",
            ]
        else:
            used, allowed, share = storage[1:]
            assert (
                re.fullmatch(r"[\d.,]+ (bytes|KB|MB)", used) and allowed == "100 MB" and share.endswith("%")
            )


def test_every_time_in_the_portal_is_on_the_tenants_clock_and_says_so(
    settings: Settings, superadmin: Credentials
) -> None:
    """Changed in the settings, the clock is the tenant's on every page: the backups, the audit
    trail, the people (kept with the tenant, so no page asks its store for it)."""
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@clock.example")
    with portal(settings) as client:
        signed_in(client, admin)
        changed = post_form(
            client,
            f"/t/{SLUG}/settings",
            {"name": "Clock Club", "timezone": "Asia/Tokyo", "accent_colour": "#2f5bd3"},
        )
        assert changed.status_code in (200, 303), changed.text
        assert tenant(settings, SLUG).timezone == "Asia/Tokyo"
        audit = client.get(f"/t/{SLUG}/audit").text
        people = client.get(f"/t/{SLUG}/people").text
    shown = re.findall(
        r'<time class="nowrap" datetime="([^"]+)">([^<]+)</time> <small class="zone">([^<]+)</small>', audit
    )
    assert shown, "the audit trail's times are labelled"
    for machine, local, zone in shown:
        at = datetime.fromisoformat(machine).astimezone(ZoneInfo("Asia/Tokyo"))
        assert (local, zone) == (at.strftime("%Y-%m-%d %H:%M:%S"), "JST")
    assert "(Asia/Tokyo)" in people
