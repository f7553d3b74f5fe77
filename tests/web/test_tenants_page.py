"""The landlord's tenants page: listing, HTMX search and pagination."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import update

from services.models import Tenant
from services.settings import Settings
from tests.support import post_form, run_db
from tests.web.portal import HTMX, add_tenant, assert_no_trace, is_partial
from tests.web.tenant_world import (
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)

PER_PAGE = 20


def slugs_on(html: str) -> list[str]:
    """The tenant slugs listed in the table, in order."""
    rows = re.search(r"<tbody>(.*?)</tbody>", html, re.DOTALL)
    return re.findall(r"<code>([^<]+)</code>", rows.group(1)) if rows else []


def test_the_tenants_page_lists_the_tenants_of_the_landlord_database(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    add_tenant(settings, "green-party", "Green Party of Ruritania")

    page = superadmin_client.get("/tenants")

    assert page.status_code == 200
    assert "<h1>Tenants</h1>" in page.text
    assert sorted(slugs_on(page.text)) == ["green-party", "harbour-club"]
    assert "Green Party of Ruritania" in page.text
    assert "provisioning" in page.text
    assert "2 tenants · page 1 of 1" in page.text


def test_with_no_tenants_the_page_says_so(superadmin_client: TestClient[Any]) -> None:
    page = superadmin_client.get("/tenants")

    assert "No tenants yet." in page.text
    assert "<table" not in page.text


def test_htmx_search_swaps_in_only_the_tenant_table(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    add_tenant(settings, "green-party", "Green Party")

    response = superadmin_client.get("/tenants", params={"q": "harb"}, headers=HTMX)

    assert response.status_code == 200
    assert is_partial(response.text)
    assert response.text.lstrip().startswith('<div id="tenant-table">')
    assert slugs_on(response.text) == ["harbour-club"]


def test_search_matches_the_slug_or_the_name_in_any_case(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "harbour-club", "Seaside Sailors")
    add_tenant(settings, "green-party", "The Harbour Greens")
    add_tenant(settings, "chess-circle", "Chess Circle")

    found = superadmin_client.get("/tenants", params={"q": "HARBOUR"}, headers=HTMX)

    assert sorted(slugs_on(found.text)) == ["green-party", "harbour-club"]


def test_a_search_without_matches_says_nothing_matched(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "harbour-club")

    response = superadmin_client.get("/tenants", params={"q": "zebra"}, headers=HTMX)

    assert "No tenant matches “zebra”." in response.text
    assert "No tenants yet" not in response.text


def test_search_finds_percent_and_underscore_literally(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "half-off", "Half 50% Off")
    add_tenant(settings, "fifty-club", "Fifty 500 Club")
    add_tenant(settings, "snake-case", "snake_case fans")
    add_tenant(settings, "snakes", "snakeXcase fans")

    percent = superadmin_client.get("/tenants", params={"q": "50%"}, headers=HTMX)
    underscore = superadmin_client.get("/tenants", params={"q": "snake_case"}, headers=HTMX)

    assert slugs_on(percent.text) == ["half-off"]
    assert slugs_on(underscore.text) == ["snake-case"]


def test_what_was_searched_for_is_shown_as_text_not_markup(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "sneaky-tenant", "<script>alert('name')</script>")

    search = superadmin_client.get("/tenants", params={"q": "<script>alert('q')</script>"})
    listing = superadmin_client.get("/tenants")

    assert "<script>alert(" not in search.text
    assert "&lt;script&gt;alert(" in search.text
    assert "<script>alert(" not in listing.text


def test_twenty_five_tenants_span_two_pages(superadmin_client: TestClient[Any], settings: Settings) -> None:
    for number in range(25):
        add_tenant(settings, f"tenant-{number:02d}")

    first = superadmin_client.get("/tenants")
    second = superadmin_client.get("/tenants", params={"page": 2}, headers=HTMX)

    assert len(slugs_on(first.text)) == PER_PAGE
    assert "25 tenants · page 1 of 2" in first.text
    assert 'href="/tenants?page=2"' in first.text
    assert len(slugs_on(second.text)) == 25 - PER_PAGE
    assert "page 2 of 2" in second.text
    assert "Next" not in second.text and "Previous" in second.text
    assert sorted(slugs_on(first.text) + slugs_on(second.text)) == [f"tenant-{n:02d}" for n in range(25)]
    assert slugs_on(first.text)[0] == "tenant-24", "newest first"


def test_search_results_are_paginated_and_the_pager_keeps_the_search(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    for number in range(22):
        add_tenant(settings, f"club-{number:02d}")
    add_tenant(settings, "party-00")

    first = superadmin_client.get("/tenants", params={"q": "club"}, headers=HTMX)
    second = superadmin_client.get("/tenants", params={"q": "club", "page": 2}, headers=HTMX)

    assert "22 tenants · page 1 of 2" in first.text
    assert 'hx-get="/tenants?q=club&amp;page=2"' in first.text
    assert len(slugs_on(second.text)) == 2


def test_a_page_number_past_the_end_is_not_an_error(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "harbour-club")

    for page in (7, 10**30):
        response = superadmin_client.get("/tenants", params={"page": page})
        assert response.status_code == 200, page
        assert slugs_on(response.text) == []
        assert f"There is no page {page}." in response.text
        assert "No tenants yet" not in response.text
        assert_no_trace(response.text)


def test_a_page_number_that_is_not_a_number_is_refused_plainly(superadmin_client: TestClient[Any]) -> None:
    for page in ("0", "two"):
        response = superadmin_client.get("/tenants", params={"page": page})
        assert response.status_code == 400
        assert "<h1>Bad request</h1>" in response.text
        assert_no_trace(response.text)


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr data-tenant="([^"]+)"', html)


def set_status(settings: Settings, slug: str, status: str, plan: str | None = None) -> None:
    values: dict[str, str] = {"status": status} | ({"plan_key": plan} if plan else {})
    run_db(
        settings, lambda session: session.execute(update(Tenant).where(Tenant.slug == slug).values(**values))
    )


def test_the_list_filters_sorts_and_shows_each_tenants_plan_store_and_last_activity(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    provision(settings, "kite-club")  # a real store, on disk
    for slug, name in (
        ("alder-trust", "=Alder Trust"),
        ("birch-party", "Birch Party"),
        ("cedar-club", "Cedar Club"),
    ):
        add_tenant(settings, slug, name)
    set_status(settings, "alder-trust", "active", plan="starter")
    set_status(settings, "birch-party", "suspended")
    changed = post_form(
        superadmin_client, "/tenants/kite-club/plan", {"plan": "starter"}, follow_redirects=False
    )
    assert changed.status_code == 303  # an entry on the trail: kite-club was active just now

    page = superadmin_client.get("/tenants")
    assert set(rows_of(page.text)) == {"kite-club", "alder-trust", "birch-party", "cedar-club"}
    kite = page.text.split('data-tenant="kite-club"')[1].split("</tr>")[0]
    assert int(re.search(r'data-store-bytes="(\d+)"', kite).group(1)) > 0, "its store's size"  # type: ignore[union-attr]
    assert "Starter" in kite and re.search(
        r"\d{4}-\d\d-\d\d \d\d:\d\d</time> <small class=\"zone\">UTC</small></td>\s*<td", kite
    ), "last active"
    cedar = page.text.split('data-tenant="cedar-club"')[1].split("</tr>")[0]
    assert 'data-store-bytes=""' in cedar and "—" in cedar, "no store yet, never active"

    starter = superadmin_client.get("/tenants", params={"plan": "starter", "status": "active"}, headers=HTMX)
    assert sorted(rows_of(starter.text)) == ["alder-trust", "kite-club"]
    assert "2 tenants" in starter.text
    assert rows_of(superadmin_client.get("/tenants", params={"status": "suspended"}).text) == ["birch-party"]
    assert (
        "No tenant matches these filters."
        in superadmin_client.get("/tenants", params={"isolation": "shared"}).text
    )

    by_name = superadmin_client.get("/tenants", params={"sort": "name", "order": "asc"})
    assert rows_of(by_name.text) == ["alder-trust", "birch-party", "cedar-club", "kite-club"]
    assert 'aria-sort="ascending"' in by_name.text
    assert 'href="/tenants?sort=name"' in by_name.text, "the same header turns the order round (descending)"
    assert (
        rows_of(superadmin_client.get("/tenants", params={"sort": "active", "order": "desc"}).text)[0]
        == "kite-club"
    )
    assert rows_of(superadmin_client.get("/tenants", params={"sort": "nonsense"}).text)[0] == "cedar-club", (
        "an unknown sort is the newest first"
    )

    exported = superadmin_client.get(
        "/tenants/export.csv", params={"status": "active", "sort": "slug", "order": "asc"}
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert lines[0][:3] == ["slug", "name", "status"]
    assert [line[0] for line in lines[1:]] == ["alder-trust", "kite-club"]
    assert lines[1][1] == "'=Alder Trust", "a name that would start a formula is neutralised"
    assert int(lines[2][lines[0].index("store_bytes")]) > 0
