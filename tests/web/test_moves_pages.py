"""Moving a tenant from the landlord portal: the superadmin moves harbour-club into the shared store
through the form (the slug typed to confirm), the embedded worker runs the move, and the tenant
page lists it with its figures and the store it left kept; moving it back through its confirmation
returns it to that very store, its rows intact. A form's mistakes are said next to their fields
and record nothing; a second move while one is under way is refused in words; only landlord staff
may move a tenant."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Job, OldStore, PlatformRole, TenantMove
from services.moves.requests import LOCK, MOVE
from services.settings import Settings
from tests.services.running import wait_for
from tests.support import Credentials, post_form, run_db, signed_in
from tests.web.portal import HTMX, add_user, assert_no_trace, is_partial
from tests.web.test_provisioning_pages import text_of
from tests.web.test_restores import (  # noqa: F401  (fixtures, used by name)
    SLUG,
    audit,
    harbour,
    landlord_token,
    no_stores_left_behind,
    regattas,
    tenant_admin,
)
from tests.workers.gate import reached
from tests.workers.move_gate import hold_move_at
from tests.workers.support import tenant, wait_until_finished

#: harbour-club with three regattas, provisioned by the app's worker: test_restores' own.
pytestmark = pytest.mark.usefixtures("harbour")

PAGE = f"/tenants/{SLUG}"
MOVE_PAGE = f"{PAGE}/move"
REGATTAS = ["Regatta 1", "Regatta 2", "Regatta 3"]
#: A move copies the tenant through a verified portable backup: more than a page load.
MOVE_SECONDS = 90


@pytest.fixture
def pat(request: pytest.FixtureRequest) -> tuple[Credentials, str]:
    """harbour-club's own admin (test_restores' `tenant_admin`): their credentials and a tenant token
    that reads its rows through the API."""
    admin: tuple[Credentials, str] = request.getfixturevalue("tenant_admin")
    return admin


def recorded_moves(settings: Settings) -> list[TenantMove]:
    async def work(session: AsyncSession) -> list[TenantMove]:
        return list(await session.scalars(select(TenantMove).order_by(TenantMove.id)))

    return run_db(settings, work)


def move_jobs(settings: Settings) -> int:
    async def work(session: AsyncSession) -> int:
        return await session.scalar(select(func.count()).select_from(Job).where(Job.kind == MOVE)) or 0

    return run_db(settings, work)


def choices(page: str) -> dict[str, str]:
    """The kinds of store the move page offers, in words, and what the form sends for each."""
    found = re.findall(r'<input type="radio" name="to" value="([^"]+)"[^>]*>\s*<span>([^<:]+):', page)
    return {words.strip(): value for value, words in found}


def chosen(page: str) -> str | None:
    """The kind of store ticked on the move page."""
    match = re.search(r'<input type="radio" name="to" value="([^"]+)" required\s+checked', page)
    return match.group(1) if match else None


def shared_store(page: str) -> tuple[str, str]:
    """The shared store on the backend the tenant is on (its landlord's: SQLite or PostgreSQL), as
    the move page offers it: its words and its value."""
    backend = "SQLite" if tenant_is_on_sqlite(page) else "PostgreSQL"
    words = f"the shared {backend} store"
    return words, choices(page)[words]


def tenant_is_on_sqlite(page: str) -> bool:
    return "Kind a SQLite database" in text_of(page)


def move_rows(page: str) -> list[str]:
    """The Moves panel's rows, newest first, as text."""
    return [text_of(row) for row in re.findall(r"<tr data-move=.*?</tr>", page, re.DOTALL)]


def asked_to_move(client: TestClient[Any], to: str, confirm: str = SLUG, **kwargs: Any) -> Any:
    return post_form(client, MOVE_PAGE, {"to": to, "confirm": confirm}, follow_redirects=False, **kwargs)


def field_error(page: str, field: str) -> str:
    match = re.search(rf'<small class="field-error" id="{field}-error">(.*?)</small>', page, re.DOTALL)
    assert match, f"no error next to {field}"
    return text_of(match.group(1))


def test_a_superadmin_moves_a_tenant_into_the_shared_store_and_back_to_the_store_it_left(
    superadmin_client: TestClient[Any],
    pat: tuple[Credentials, str],
    settings: Settings,
) -> None:
    client, (_, tenant_token) = superadmin_client, pat
    before = tenant(settings, SLUG)
    tenant_page = client.get(PAGE).text
    assert f'href="{MOVE_PAGE}"' in tenant_page and "Move…" in tenant_page
    assert 'id="tenant-moves"' not in tenant_page, "no Moves panel before the first move"

    page = client.get(MOVE_PAGE)

    assert page.status_code == 200, page.text
    said = text_of(page.text)
    assert f"Store {before.store_name}" in said
    assert re.search(r"Size \d[\d,]* rows at its latest measure", said), said
    assert "keeps serving while its rows are copied" in said, said
    assert "maintenance page" in said and "503" in said and "final catch-up" in said
    assert "portable backup" in said and "kept among its backups" in said
    shared, value = shared_store(page.text)
    assert "ids another tenant holds there are renumbered" in said
    assert f"Type <code>{SLUG}</code> to confirm" in page.text

    asked = asked_to_move(client, value)

    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == PAGE
    [moved] = recorded_moves(settings)
    assert moved.job_id is not None
    job = wait_until_finished(settings, moved.job_id, timeout=MOVE_SECONDS)
    assert (job.status, job.error) == ("succeeded", None)
    after = tenant(settings, SLUG)
    assert (after.status, after.isolation) == ("active", "shared")
    assert regattas(client, tenant_token) == REGATTAS
    [entry] = audit(settings, "tenant.move")
    assert (entry.actor_email, entry.detail["to"], entry.detail["job"]) == ("admin@localhost", shared, job.id)

    [row] = move_rows(client.get(PAGE).text)
    moved = recorded_moves(settings)[0]
    assert f"#{moved.id} " in row and f"→ {shared}" in row
    assert "by admin@localhost" in row and f"#{job.id} succeeded" in row
    assert f"{moved.rows:,} rows in {moved.tables} tables" in row and moved.rows
    assert re.search(r"\d+\.\d s \d+\.\d s", row), "the copy time and how long writes were held"
    assert moved.old_store == OldStore.KEPT and moved.kept_until is not None
    assert f"kept until {moved.kept_until:%Y-%m-%d %H:%M} UTC" in row
    assert "Move back…" in row

    back_page = client.get(f"{PAGE}/moves/{moved.id}/back")

    assert back_page.status_code == 200, back_page.text
    said = text_of(back_page.text)
    going = "a SQLite database" if before.store_backend == "sqlite" else "a PostgreSQL database"
    assert f"Moving back takes it to {going} again" in said
    assert f"takes back the very store it left, {before.store_name}" in said
    assert "copied into a new store" in said and "maintenance page" in said

    confirmed = post_form(client, f"{PAGE}/moves/{moved.id}/back", {}, follow_redirects=False)

    assert confirmed.status_code == 303 and confirmed.headers["location"] == PAGE
    back = recorded_moves(settings)[-1]
    assert back.back_of == moved.id and back.job_id is not None
    job = wait_until_finished(settings, back.job_id, timeout=MOVE_SECONDS)
    assert (job.status, job.error) == ("succeeded", None)
    returned = tenant(settings, SLUG)
    assert (returned.isolation, returned.store_name) == (before.isolation, before.store_name)
    assert regattas(client, tenant_token) == REGATTAS
    newest, first = move_rows(client.get(PAGE).text)
    assert f"back of #{moved.id}" in newest and "Move back…" in newest
    assert "in use again" in first and "Move back…" not in first
    assert client.get(f"{PAGE}/moves/999/back").status_code == 404
    refused = client.get(f"{PAGE}/moves/{moved.id}/back")
    assert refused.status_code == 409
    assert f"Move #{moved.id} cannot be moved back" in text_of(refused.text)
    assert "<form" not in refused.text.split('id="move-back"')[1]


def test_a_move_is_refused_next_to_the_field_at_fault_and_nothing_is_recorded(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    _, shared = shared_store(client.get(MOVE_PAGE).text)

    unchosen = post_form(client, MOVE_PAGE, {"confirm": SLUG})
    elsewhere = asked_to_move(client, "sqlite:schema")
    mistyped = asked_to_move(client, shared, confirm="harbour")
    both = asked_to_move(client, "", confirm="")
    in_place = asked_to_move(client, "sqlite:schema", headers=HTMX)

    for refused in (unchosen, elsewhere, mistyped, both):
        assert refused.status_code == 422, refused.text
        assert "<h1>Move Harbour Club" in refused.text
        assert_no_trace(refused.text)
    assert field_error(unchosen.text, "to") == f"Choose the kind of store {SLUG} moves to."
    assert field_error(elsewhere.text, "to").startswith(f"{SLUG} cannot move to a SQLite schema here")
    assert field_error(mistyped.text, "confirm") == f"Type {SLUG} to confirm that it is to be moved."
    assert 'id="to-error"' not in mistyped.text and chosen(mistyped.text) == shared, "the choice is kept"
    assert {field_error(both.text, "to"), field_error(both.text, "confirm")} == {
        f"Choose the kind of store {SLUG} moves to.",
        f"Type {SLUG} to confirm that it is to be moved.",
    }
    assert in_place.status_code == 422 and is_partial(in_place.text)
    assert in_place.text.lstrip().startswith('<form id="move-form"')
    assert "cannot move to a SQLite schema here" in field_error(in_place.text, "to")
    without_csrf = client.post(MOVE_PAGE, data={"to": shared, "confirm": SLUG}, follow_redirects=False)
    assert without_csrf.status_code == 403

    assert recorded_moves(settings) == [] and move_jobs(settings) == 0
    assert audit(settings, "tenant.move") == []
    assert tenant(settings, SLUG).status == "active"


def test_a_second_move_while_one_is_under_way_is_refused_with_a_clear_message(
    superadmin_client: TestClient[Any], settings: Settings, tmp_path: Path
) -> None:
    client = superadmin_client
    _, shared = shared_store(client.get(MOVE_PAGE).text)
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_move_at(LOCK, gate)
    try:
        assert asked_to_move(client, shared).status_code == 303
        wait_for(reached(gate).exists, MOVE_SECONDS, what="the move to reach its gate")
        [first] = recorded_moves(settings)

        again = asked_to_move(client, shared)

        assert again.status_code == 409, again.text
        refusal = re.search(r'id="move-refusal">(.*?)</p>', again.text, re.DOTALL)
        assert refusal and text_of(refusal.group(1)) == (
            f"{SLUG} is moving already (move #{first.id}); wait until it is done."
        )
        assert_no_trace(again.text)
        in_place = asked_to_move(client, shared, headers=HTMX)
        assert in_place.status_code == 422 and is_partial(in_place.text), "HTMX swaps a refusal in place"
        assert f"{SLUG} is moving already" in text_of(in_place.text)
        assert len(recorded_moves(settings)) == 1 and move_jobs(settings) == 1
        tenant_page = client.get(PAGE).text
        under_way = text_of(tenant_page)
        assert f"{SLUG} is moving to the shared" in under_way and "its API answers 503" in under_way
        assert 'id="move-link"' not in tenant_page, "no second move is offered while one is under way"
    finally:
        gate.unlink()
        remove_gate()

    assert first.job_id is not None
    job = wait_until_finished(settings, first.job_id, timeout=MOVE_SECONDS)
    assert (job.status, job.error) == ("succeeded", None)
    assert "is moving to" not in text_of(client.get(PAGE).text)


def test_only_landlord_staff_see_the_move_link_and_may_move_a_tenant(
    client: TestClient[Any], pat: tuple[Credentials, str], settings: Settings
) -> None:
    signed_in(client, pat[0])
    for path in (PAGE, MOVE_PAGE, f"{PAGE}/moves/1/back"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        assert "Move…" not in response.text
    for path in (MOVE_PAGE, f"{PAGE}/moves/1/back"):
        assert post_form(client, path, {"to": "sqlite:shared", "confirm": SLUG}).status_code == 403, path

    client.cookies.clear()
    assert client.get(MOVE_PAGE, follow_redirects=False).headers["location"] == f"/login?next={MOVE_PAGE}"

    signed_in(client, add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN))
    assert 'id="move-link"' in client.get(PAGE).text, "landlord admins restore tenants, so they move them"
    assert client.get(MOVE_PAGE).status_code == 200
    assert recorded_moves(settings) == [] and move_jobs(settings) == 0
