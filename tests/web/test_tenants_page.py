"""The landlord's tenants page: listing, HTMX search and pagination."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

from services.settings import Settings
from tests.web.portal import HTMX, add_tenant, assert_no_trace, is_partial

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
    assert 'href="/tenants?q=&page=2"' in first.text
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
    assert 'hx-get="/tenants?q=club&page=2"' in first.text
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
