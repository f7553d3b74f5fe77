"""Creating tenants in the landlord portal: the new-tenant form and its HTMX module choices, every
mistake shown at once (and nothing created), the tenant page following its provisioning job to
the end, a failed tenant retried, and a tenant's custom layer applied and rolled back on request."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import load_catalogue
from services.layers.migrator import head, revisions
from services.models import Job, JobStatus, PlatformRole, SchemaSnapshot, Tenant, TenantRole, TenantStatus
from services.provisioning.tenants import PROVISIONING_STEP_NAMES
from services.provisioning.warm_pool import FILL_WARM_POOL
from services.settings import Settings
from tests.services.running import ROOT, wait_for
from tests.support import Credentials, csrf_token, run_db, sign_in
from tests.web.portal import HTMX, add_tenant, add_token, add_user, assert_no_trace, is_partial, portal
from tests.workers.support import (
    GATE_VARIABLE,
    drop_tenant_databases,
    layers_with_gate,
    tenant,
    wait_until_active,
    wait_until_finished,
)

TEMPLATES = {"community_group", "non_profit", "political_party"}
NON_PROFIT_DEFAULTS = {"finance", "documents", "events", "volunteering"}
#: A valid request; tests change what they need.
VALID = {"slug": "save-the-owls", "name": "Save the Owls", "template": "non_profit", "isolation": "database"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    """On PostgreSQL each tenant (and golden image) is a database beside the landlord's: drop them."""
    yield
    drop_tenant_databases(settings.database_url)


# --- Submitting and reading pages ------------------------------------------------------------


def submit(client: TestClient[Any], fields: dict[str, Any], *, htmx: bool = False) -> Any:
    """POST the new-tenant form as the page does (a browser form, or HTMX's hx-post)."""
    return client.post(
        "/tenants",
        data={**fields, "_csrf_token": csrf_token(client)},
        headers=HTMX if htmx else {},
        follow_redirects=False,
    )


def post(client: TestClient[Any], path: str, *, htmx: bool = False) -> Any:
    return client.post(
        path, data={"_csrf_token": csrf_token(client)}, headers=HTMX if htmx else {}, follow_redirects=False
    )


def text_of(page: str) -> str:
    """The page's text without tags, entities decoded and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def ticked_modules(page: str) -> dict[str, bool]:
    """Every module checkbox on the page, and whether it is ticked."""
    boxes = re.findall(r'<input type="checkbox" name="modules" value="([^"]+)"\s*(checked)?', page)
    return {name: bool(checked) for name, checked in boxes}


def field_errors(page: str) -> dict[str, str]:
    """Each field's error; one listing several problems (the modules'), a line each."""
    found = re.findall(r'<(small|ul) class="field-error" id="([a-z]+)-error">(.*?)</\1>', page, re.DOTALL)
    return {
        field: "\n".join(
            html.unescape(line).strip() for line in re.findall(r"<li>(.*?)</li>", message) or [message]
        )
        for _, field, message in found
    }


def step_states(page: str) -> dict[str, str]:
    return {name: state for state, name in re.findall(r'<li class="step (\w+)" data-step="([^"]+)">', page)}


def table(page: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.DOTALL)
    assert match, f"the page has no table #{table_id}"
    return match.group(1)


def layer_rows(page: str) -> dict[str, tuple[str, str, str]]:
    """The layers table: key -> (version, applied revision, head revision)."""
    rows = re.findall(
        r"<td>([^<]+)</td><td>([^<]+)</td>\s*<td><code>([^<]+)</code></td>\s*<td><code>([^<]+)</code>",
        table(page, "layers"),
    )
    return {key: (version, applied, head_) for key, version, applied, head_ in rows}


def history_rows(page: str) -> list[tuple[str, str, str, str]]:
    """The migration history table, newest first: (layer, revision, direction, outcome)."""
    return re.findall(
        r"<td>([^<]+)</td><td><code>([^<]+)</code></td>\s*<td>(up|down)</td>.*?"
        r'<span class="badge (\w+)">',
        table(page, "history"),
        re.DOTALL,
    )


def snapshot_hash(page: str) -> str:
    match = re.search(r'<code class="hash" id="snapshot-hash">([^<]*)</code>', page)
    assert match, "the page shows no snapshot"
    return match.group(1)


def tenant_status(page: str) -> str:
    match = re.search(r'<span class="badge (\w+)" id="tenant-status">\1</span>', page)
    assert match, "the page shows no tenant status"
    return match.group(1)


def button(page: str, action: str) -> str | None:
    """The <form> posting to `action` (with its button), or None."""
    match = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', page, re.DOTALL)
    return match.group(0) if match else None


# --- The landlord database --------------------------------------------------------------------


def counts(settings: Settings) -> tuple[int, int]:
    """How many tenants and jobs there are."""

    async def work(session: AsyncSession) -> tuple[int, int]:
        tenants = await session.scalar(select(func.count()).select_from(Tenant))
        jobs = await session.scalar(select(func.count()).select_from(Job))
        return tenants or 0, jobs or 0

    return run_db(settings, work)


def latest_job(settings: Settings, slug: str) -> Job:
    async def work(session: AsyncSession) -> Job:
        statement = select(Job).join(Tenant, Job.tenant_id == Tenant.id).where(Tenant.slug == slug)
        return (await session.scalars(statement.order_by(Job.id.desc()).limit(1))).one()

    return run_db(settings, work)


def latest_snapshot(settings: Settings, tenant_id: int) -> str | None:
    statement = (
        select(SchemaSnapshot.sha256)
        .where(SchemaSnapshot.tenant_id == tenant_id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    return run_db(settings, lambda session: session.scalar(statement))


def wait_until_failed(settings: Settings, slug: str, timeout: float = 60) -> Tenant:
    def failed() -> Tenant | None:
        found = tenant(settings, slug)
        assert found.status != TenantStatus.ACTIVE, f"{slug} was expected to fail but is active"
        return found if found.status == TenantStatus.FAILED else None

    return wait_for(failed, timeout, what=f"tenant {slug} to fail", interval=0.1)


def wait_until_job_finished(settings: Settings, slug: str, after: int) -> Job:
    """The tenant's newest job once there is one newer than job `after` and it has finished."""
    newer = wait_for(
        lambda: job if (job := latest_job(settings, slug)).id > after else None,
        30,
        what=f"a new job for {slug}",
    )
    return wait_until_finished(settings, newer.id)


# --- Layers with a custom layer of the test's own ---------------------------------------------

_CUSTOM_REVISION = '''"""A test's custom change for one tenant.

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down_literal}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
    op.drop_table("{table}")
'''


def write_custom_revision(
    layers: Path, slug: str, number: int, *, table_name: str, fails_with: str | None = None
) -> str:
    """Add (or rewrite) revision `number` of `slug`'s custom layer; returns its revision id."""
    versions = layers / "custom" / slug / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    suffix = slug.replace("-", "_")
    revision = f"{suffix}_{number:04d}"
    down = f"{suffix}_{number - 1:04d}" if number > 1 else None
    if fails_with:
        upgrade = f"    raise RuntimeError({fails_with!r})"
    else:
        upgrade = f'    op.create_table("{table_name}", sa.Column("id", sa.Integer, primary_key=True))'
    (versions / f"{revision}_change.py").write_text(
        _CUSTOM_REVISION.format(
            revision=revision,
            down=down or "",
            down_literal=repr(down),
            upgrade=upgrade,
            table=table_name,
        )
    )
    shutil.rmtree(versions / "__pycache__", ignore_errors=True)
    return revision


def copy_of_layers(tmp_path: Path) -> Path:
    layers = tmp_path / "layers"
    shutil.copytree(ROOT / "layers", layers, ignore=shutil.ignore_patterns("__pycache__"))
    return layers


def signed_in(client: TestClient[Any], person: Credentials) -> TestClient[Any]:
    response = sign_in(client, person)
    assert response.status_code in (302, 303), response.text
    return client


# --- The form ---------------------------------------------------------------------------------


def test_the_form_lists_the_templates_and_the_modules_with_their_versions(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    page = superadmin_client.get("/tenants/new")

    assert page.status_code == 200
    assert "<h1>New tenant</h1>" in page.text
    catalogue = load_catalogue(settings.layers_dir)
    assert set(catalogue.templates) == TEMPLATES
    template_select = page.text.split('<select name="template"')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]*)"\s*>([^<]*)</option>', template_select)
    assert [value for value, _ in options] == ["", *sorted(TEMPLATES)]
    for value, label in options[1:]:
        template = catalogue.templates[value]
        assert html.unescape(label) == f"{template.title} (v{template.version})"
    assert ticked_modules(page.text) == {name: False for name in catalogue.modules}
    text = text_of(page.text)
    for module in catalogue.modules.values():
        assert f"{module.title} v{module.version}" in text
    assert "Events v1.1.0" in text
    assert "Requires Events." in text, "a module's requirements are shown beside it"
    assert "Conflicts with Simple ledger." in text
    assert re.search(r'<input type="radio" name="isolation" value="database"\s*checked>', page.text)
    assert 'hx-get="/tenants/new/modules"' in page.text
    assert re.search(r'<option value="standard"\s*selected>', page.text), (
        "new tenants start on the default plan"
    )


def test_choosing_a_template_ticks_exactly_its_default_modules(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    partial = superadmin_client.get("/tenants/new/modules", params={"template": "non_profit"}, headers=HTMX)

    assert partial.status_code == 200
    assert is_partial(partial.text)
    assert partial.text.lstrip().startswith('<fieldset id="module-choices"')
    ticked = ticked_modules(partial.text)
    assert set(ticked) == set(load_catalogue(settings.layers_dir).modules)
    assert {name for name, on in ticked.items() if on} == NON_PROFIT_DEFAULTS

    other = superadmin_client.get(
        "/tenants/new/modules", params={"template": "political_party"}, headers=HTMX
    )
    assert {name for name, on in ticked_modules(other.text).items() if on} == {
        "membership_tiers",
        "events",
        "election_campaign",
    }
    for template in ("", "no-such-template"):
        none = superadmin_client.get("/tenants/new/modules", params={"template": template}, headers=HTMX)
        assert none.status_code == 200
        assert not any(ticked_modules(none.text).values()), template

    # Without JavaScript, /tenants/new?template= opens the form with the template chosen and ticked.
    page = superadmin_client.get("/tenants/new", params={"template": "non_profit"})
    assert re.search(r'<option value="non_profit"\s*selected>', page.text)
    assert {name for name, on in ticked_modules(page.text).items() if on} == NON_PROFIT_DEFAULTS


# --- Mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_every_mistake_is_shown_at_once_and_nothing_is_created(
    superadmin_client: TestClient[Any], settings: Settings, htmx: bool
) -> None:
    before = counts(settings)

    response = submit(
        superadmin_client,
        {**VALID, "slug": "Not A Slug!", "name": "  ", "modules": ["finance", "simple_ledger", "events"]},
        htmx=htmx,
    )

    assert response.status_code == 422
    assert_no_trace(response.text)
    if htmx:
        assert is_partial(response.text)
        assert response.text.lstrip().startswith('<form id="new-tenant-form"')
    else:
        assert "<h1>New tenant</h1>" in response.text
    assert "Nothing was created" in response.text
    errors = field_errors(response.text)
    assert set(errors) == {"slug", "name", "modules"}
    assert errors["slug"].startswith("A slug is 3 to 63 lowercase letters")
    assert errors["name"] == "Give the tenant a name."
    assert errors["modules"] == "Finance and Simple ledger cannot be enabled together: choose one."
    # What was typed and ticked is kept, and each wrong field is marked (and points at its message).
    assert 'name="slug" value="Not A Slug!"' in response.text
    assert re.search(r'<option value="non_profit"\s*selected>', response.text)
    assert {name for name, on in ticked_modules(response.text).items() if on} == {
        "finance",
        "simple_ledger",
        "events",
    }
    for field in ("slug", "name"):
        tag = re.search(rf'<input name="{field}"[^>]*>', response.text)
        assert tag, field
        assert 'aria-invalid="true"' in tag.group(0)
        described = re.findall(r'aria-describedby="([^"]*)"', tag.group(0))
        assert len(described) == 1, f"{field}: one aria-describedby, not {described}"
        assert f"{field}-error" in described[0].split()
    assert 'class="choices invalid"' in response.text
    assert counts(settings) == before


def test_a_missing_requirement_names_both_modules_by_title(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    before = counts(settings)

    response = submit(
        superadmin_client,
        {**VALID, "template": "political_party", "modules": ["election_campaign", "membership_tiers"]},
    )

    assert response.status_code == 422
    errors = field_errors(response.text)
    assert set(errors) == {"modules"}
    assert (
        errors["modules"] == "Election campaign needs Events: tick Events too, or untick Election campaign."
    )
    assert counts(settings) == before


def test_a_taken_slug_is_refused(superadmin_client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "save-the-owls", "Owls Already")
    before = counts(settings)

    response = submit(superadmin_client, {**VALID, "modules": sorted(NON_PROFIT_DEFAULTS)}, htmx=True)

    assert response.status_code == 422
    assert field_errors(response.text) == {"slug": "The slug 'save-the-owls' is taken."}
    assert counts(settings) == before
    assert tenant(settings, "save-the-owls").name == "Owls Already"


def test_a_form_sent_back_keeps_no_modules_ticked_when_none_were(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    """Unticking every default and making another mistake must not tick the defaults again."""
    response = submit(superadmin_client, {**VALID, "slug": "x"}, htmx=True)

    assert response.status_code == 422
    assert set(field_errors(response.text)) == {"slug"}
    assert not any(ticked_modules(response.text).values())


# --- Creating and following a tenant ----------------------------------------------------------


def assert_active_tenant_page(page: str, settings: Settings, slug: str, modules: set[str]) -> None:
    """The page of a tenant that was just provisioned: active, each step done, every layer at its
    head, its snapshot, and one successful history row per revision applied."""
    assert tenant_status(page) == "active"
    assert re.search(r'<span class="badge succeeded" id="job-status">succeeded</span>', page)
    assert step_states(page) == dict.fromkeys(PROVISIONING_STEP_NAMES, "succeeded")
    assert "hx-trigger" not in page, "a finished tenant's page does not poll"

    found = tenant(settings, slug)
    catalogue = load_catalogue(settings.layers_dir)
    layers = catalogue.layers_for(found.template, found.modules, slug)
    assert {layer.key for layer in layers} == {
        "basic",
        f"templates/{found.template}",
        *(f"modules/{name}" for name in modules),
    }
    assert layer_rows(page) == {
        layer.key: (layer.version, head(layer) or "", head(layer) or "") for layer in layers
    }
    assert "behind" not in table(page, "layers")

    shown = snapshot_hash(page)
    assert SHA256.match(shown), shown
    assert shown == latest_snapshot(settings, found.id)

    expected = sorted(
        (layer.key, revision, "up", "succeeded") for layer in layers for revision in revisions(layer)
    )
    assert sorted(history_rows(page)) == expected


def test_a_landlord_admin_creates_a_tenant_and_its_page_shows_it_active(
    client: TestClient[Any], settings: Settings
) -> None:
    signed_in(client, add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN))
    assert client.get("/tenants/new").status_code == 200
    assert (
        client.get("/tenants/new/modules", params={"template": "non_profit"}, headers=HTMX).status_code == 200
    )

    response = submit(client, {**VALID, "modules": sorted(NON_PROFIT_DEFAULTS)})

    assert response.status_code == 303, "a form POST is answered with See Other"
    assert response.headers["location"] == "/tenants/save-the-owls"
    created = tenant(settings, "save-the-owls")
    assert (created.name, created.template, created.isolation) == ("Save the Owls", "non_profit", "database")
    job = latest_job(settings, "save-the-owls")
    assert job.kind == "provision"

    wait_until_active(settings, "save-the-owls")
    assert wait_until_finished(settings, job.id).status == JobStatus.SUCCEEDED
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "<h1>Save the Owls" in page.text
    assert_active_tenant_page(page.text, settings, "save-the-owls", NON_PROFIT_DEFAULTS)
    assert "Custom layer" not in page.text, "no custom buttons without a custom layer"
    history = page.text.split(f'<tr data-job="{job.id}">')[1].split("</tr>")[0]
    assert "build Save the Owls from the Non-profit template (database)" in history, "what the job did"
    listing = client.get("/tenants")
    assert 'href="/tenants/save-the-owls"' in listing.text


def test_over_htmx_a_new_tenant_redirects_and_its_finished_page_asks_for_a_refresh(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = submit(
        superadmin_client,
        {
            **VALID,
            "slug": "harbour-club",
            "name": "Harbour Club",
            "template": "community_group",
            "modules": "events",
        },
        htmx=True,
    )

    assert 200 <= response.status_code < 300, response.text
    assert response.headers["hx-redirect"] == "/tenants/harbour-club"
    assert tenant(settings, "harbour-club").modules == ["events"], "a single ticked module is a list of one"

    wait_until_active(settings, "harbour-club")
    wait_until_finished(settings, latest_job(settings, "harbour-club").id)
    poll = superadmin_client.get("/tenants/harbour-club", headers=HTMX)
    assert poll.status_code == 200
    assert poll.headers.get("hx-refresh") == "true"
    assert "<table" not in poll.text
    page = superadmin_client.get("/tenants/harbour-club")
    assert_active_tenant_page(page.text, settings, "harbour-club", {"events"})


def test_while_a_job_runs_the_page_polls_and_shows_each_step(
    settings: Settings, superadmin: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The custom layer's migration waits at a gate, so the job is seen half-way."""
    layers, gate = layers_with_gate(tmp_path, "slow-club")
    monkeypatch.setenv(GATE_VARIABLE, str(gate.path))
    gate.close()
    with portal(dataclasses.replace(settings, layers_dir=layers)) as client:
        signed_in(client, superadmin)
        try:
            created = submit(
                client, {**VALID, "slug": "slow-club", "template": "community_group", "modules": ["events"]}
            )
            assert created.status_code == 303
            wait_for(gate.reached.exists, 60, what="the job to reach the gate")

            page = client.get("/tenants/slow-club")
            assert tenant_status(page.text) == "provisioning"
            assert re.search(
                r'<section id="tenant-progress" class="panel"\s*hx-get="/tenants/slow-club" '
                r'hx-trigger="every 1s" hx-swap="outerHTML">',
                page.text,
            )
            assert step_states(page.text) == {
                **dict.fromkeys(["validate", "allocate store", "basic", "template", "modules"], "succeeded"),
                "custom": "running",
                **dict.fromkeys(["snapshot", "seed", "health check", "first admin", "activate"], "pending"),
            }
            assert re.search(r'<span class="badge running" id="job-status">running</span>', page.text)
            assert "No snapshot yet." in page.text

            poll = client.get("/tenants/slow-club", headers=HTMX)
            assert poll.status_code == 200
            assert "hx-refresh" not in poll.headers
            assert is_partial(poll.text)
            assert poll.text.lstrip().startswith('<section id="tenant-progress"')
            assert 'hx-trigger="every 1s"' in poll.text, "the swapped-in progress keeps polling"
            assert step_states(poll.text)["custom"] == "running"
        finally:
            gate.open()
        wait_until_active(settings, "slow-club")
        wait_until_finished(settings, latest_job(settings, "slow-club").id)
        assert client.get("/tenants/slow-club", headers=HTMX).headers.get("hx-refresh") == "true"


# --- The warm pool ----------------------------------------------------------------------------


def warm_pool_card(page: str) -> str:
    match = re.search(r'<article class="card" id="warm-pool">(.*?)</article>', page, re.DOTALL)
    assert match, "the dashboard has no warm pool card"
    return text_of(match.group(1))


def test_the_dashboard_shows_the_warm_pool_and_the_next_tenant_takes_a_store_from_it(
    settings: Settings, superadmin: Credentials
) -> None:
    pooled = dataclasses.replace(settings, warm_pool_size=2)
    with portal(pooled) as client:
        signed_in(client, superadmin)
        assert "Empty until the first tenant is created." in warm_pool_card(client.get("/").text)
        owls = {**VALID, "template": "community_group", "modules": ["events"]}
        assert submit(client, owls).status_code == 303
        wait_until_active(settings, "save-the-owls")
        fill = wait_for(lambda: fill_job(settings), 30, what="the pool's fill job to be recorded")
        assert wait_until_finished(settings, fill.id, timeout=60).status == JobStatus.SUCCEEDED

        card = warm_pool_card(client.get("/").text)
        assert "2 ready community group with events, database on" in card, card
        token = add_token(settings, superadmin.email)
        answer = client.get("/api/v1/warm-pool", headers={"Authorization": f"Bearer {token}"}).json()
        assert answer["size"] == 2
        assert [
            (pool["template"], pool["modules"], pool["ready"], pool["behind"]) for pool in answer["pools"]
        ] == [("community_group", ["events"], 2, False)], "the API says what the dashboard says"

        assert submit(client, {**owls, "slug": "save-the-bats", "name": "Save the Bats"}).status_code == 303
        wait_until_active(settings, "save-the-bats")
        page = client.get("/tenants/save-the-bats").text
        assert "from the warm pool" in text_of(page)
        assert set(step_states(page).values()) == {"succeeded"}


def fill_job(settings: Settings) -> Job | None:
    """The pool's latest fill job, once there is one."""

    async def work(session: AsyncSession) -> Job | None:
        statement = select(Job).where(Job.kind == FILL_WARM_POOL).order_by(Job.id.desc()).limit(1)
        return (await session.scalars(statement)).first()

    return run_db(settings, work)


# --- A failure, and a retry -------------------------------------------------------------------


def test_a_failed_tenant_shows_what_went_wrong_and_a_retry_brings_it_to_active(
    settings: Settings, superadmin: Credentials, tmp_path: Path
) -> None:
    layers = copy_of_layers(tmp_path)
    revision = write_custom_revision(
        layers, "owls", 1, table_name="owl_sightings", fails_with="the owls table is not ready"
    )
    with portal(dataclasses.replace(settings, layers_dir=layers)) as client:
        signed_in(client, superadmin)
        assert (
            submit(client, {**VALID, "slug": "owls", "modules": sorted(NON_PROFIT_DEFAULTS)}).status_code
            == 303
        )

        failed = wait_until_failed(settings, "owls")
        assert failed.error and "the owls table is not ready" in failed.error
        assert failed.store_name is None, "what the failed job allocated is removed"
        first_job = wait_until_finished(settings, latest_job(settings, "owls").id)
        assert first_job.status == JobStatus.FAILED

        page = client.get("/tenants/owls")
        assert page.status_code == 200
        assert tenant_status(page.text) == "failed"
        text = text_of(page.text)
        assert "Provisioning failed." in text
        assert "the owls table is not ready" in text
        assert f"custom/owls revision {revision}" in text, "the error names the layer and revision"
        states = step_states(page.text)
        assert states["custom"] == "failed"
        assert all(
            states[name] == "succeeded"
            for name in ["validate", "allocate store", "basic", "template", "modules"]
        )
        assert all(states[name] == "pending" for name in ["snapshot", "seed", "health check", "activate"])
        retry = button(page.text, "/tenants/owls/retry")
        assert retry and "Retry provisioning" in retry
        assert ("custom/owls", revision, "up", "failed") in history_rows(page.text)
        assert "hx-trigger" not in page.text
        assert client.get("/tenants/owls", headers=HTMX).headers.get("hx-refresh") == "true"

        # A developer fixes the migration; the landlord admin retries.
        write_custom_revision(layers, "owls", 1, table_name="owl_sightings")
        response = post(client, "/tenants/owls/retry")

        assert response.status_code == 303
        assert response.headers["location"] == "/tenants/owls"
        wait_until_active(settings, "owls")
        second_job = wait_until_finished(settings, latest_job(settings, "owls").id)
        assert second_job.id != first_job.id and second_job.status == JobStatus.SUCCEEDED
        page = client.get("/tenants/owls")
        assert tenant_status(page.text) == "active"
        assert "Provisioning failed." not in page.text
        assert step_states(page.text) == dict.fromkeys(PROVISIONING_STEP_NAMES, "succeeded")
        assert "Job history (2)" in page.text
        history = history_rows(page.text)
        assert ("custom/owls", revision, "up", "failed") in history
        assert ("custom/owls", revision, "up", "succeeded") in history
        assert SHA256.match(snapshot_hash(page.text))

        # Only a failed tenant is provisioned again.
        again = post(client, "/tenants/owls/retry")
        assert again.status_code == 409
        assert "only a tenant whose provisioning failed can be retried" in again.text
        assert latest_job(settings, "owls").id == second_job.id


# --- The custom layer: applied and rolled back on request --------------------------------------


def test_custom_changes_are_rolled_back_and_applied_again_from_the_tenant_page(
    settings: Settings, superadmin: Credentials, tmp_path: Path
) -> None:
    layers = copy_of_layers(tmp_path)
    first = write_custom_revision(layers, "owls", 1, table_name="owl_sightings")
    second = write_custom_revision(layers, "owls", 2, table_name="owl_nests")
    with portal(dataclasses.replace(settings, layers_dir=layers)) as client:
        signed_in(client, superadmin)
        submit(client, {**VALID, "slug": "owls", "template": "community_group"})
        wait_until_active(settings, "owls")
        provisioned = wait_until_finished(settings, latest_job(settings, "owls").id)

        page = client.get("/tenants/owls").text
        assert "<h2>Custom layer</h2>" in page
        assert "All custom revisions are applied." in page
        assert layer_rows(page)["custom/owls"][1:] == (second, second)
        apply, rollback = (
            button(page, "/tenants/owls/custom/apply"),
            button(page, "/tenants/owls/custom/rollback"),
        )
        assert apply and rollback
        assert re.search(r"<button[^>]*disabled>Apply pending", apply), "nothing is pending"
        assert "disabled" not in rollback
        assert "hx-confirm" in rollback and "hx-post" in rollback, "the confirmation is asked (hx-post)"
        before = snapshot_hash(page)

        response = post(client, "/tenants/owls/custom/rollback")
        assert response.status_code == 303
        assert response.headers["location"] == "/tenants/owls"
        rolled_back = wait_until_job_finished(settings, "owls", after=provisioned.id)
        assert (rolled_back.kind, rolled_back.status) == ("rollback_custom", JobStatus.SUCCEEDED)

        page = client.get("/tenants/owls").text
        assert tenant_status(page) == "active"
        assert ("custom/owls", second, "down", "succeeded") == history_rows(page)[0]
        assert re.search(rf"Pending: <code>{second}</code>", page)
        assert layer_rows(page)["custom/owls"][1:] == (first, second)
        assert "behind" in table(page, "layers")
        assert "disabled" not in (button(page, "/tenants/owls/custom/apply") or "")
        assert snapshot_hash(page) != before, "a new snapshot is taken after the change"

        response = post(client, "/tenants/owls/custom/apply", htmx=True)
        assert response.headers["hx-redirect"] == "/tenants/owls"
        applied = wait_until_job_finished(settings, "owls", after=rolled_back.id)
        assert (applied.kind, applied.status) == ("apply_custom", JobStatus.SUCCEEDED)

        page = client.get("/tenants/owls").text
        assert ("custom/owls", second, "up", "succeeded") == history_rows(page)[0]
        assert [row for row in history_rows(page) if row[0] == "custom/owls"] == [
            ("custom/owls", second, "up", "succeeded"),
            ("custom/owls", second, "down", "succeeded"),
            ("custom/owls", second, "up", "succeeded"),
            ("custom/owls", first, "up", "succeeded"),
        ]
        assert "All custom revisions are applied." in page
        assert layer_rows(page)["custom/owls"][1:] == (second, second)
        assert snapshot_hash(page) == before, "the same schema again, the same hash"


def test_custom_changes_need_a_custom_layer_and_a_known_action(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    submit(superadmin_client, {**VALID, "template": "community_group"})
    wait_until_active(settings, "save-the-owls")
    job = wait_until_finished(settings, latest_job(settings, "save-the-owls").id)

    refused = post(superadmin_client, "/tenants/save-the-owls/custom/apply")
    unknown = post(superadmin_client, "/tenants/save-the-owls/custom/explode")

    assert refused.status_code == 409
    assert "There is no custom layer for save-the-owls" in html.unescape(refused.text)
    assert unknown.status_code in (400, 404)
    assert_no_trace(unknown.text)
    assert latest_job(settings, "save-the-owls").id == job.id, "no job was recorded"


# --- Who may ----------------------------------------------------------------------------------


def test_tenant_admins_may_not_create_or_follow_tenants(client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    signed_in(
        client, add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-club")
    )
    before = counts(settings)

    for path in ("/tenants/new", "/tenants/new/modules?template=non_profit", "/tenants/harbour-club"):
        assert client.get(path).status_code == 403, path
        assert client.get(path, headers=HTMX).status_code == 403, path
    assert submit(client, {**VALID, "modules": ["events"]}).status_code == 403
    assert submit(client, {**VALID, "modules": ["events"]}, htmx=True).status_code == 403
    for path in ("/tenants/harbour-club/retry", "/tenants/harbour-club/custom/apply"):
        assert post(client, path).status_code == 403, path

    assert counts(settings) == before


def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    before = counts(settings)

    for path in ("/tenants/new", "/tenants/harbour-club"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code in (302, 303), path
        assert response.headers["location"] == f"/login?next={path}"
        assert client.get(path, headers=HTMX).headers["hx-redirect"] == f"/login?next={path}"
    for path in ("/tenants", "/tenants/harbour-club/retry", "/tenants/harbour-club/custom/rollback"):
        response = post(client, path)
        assert response.status_code in (302, 303), path
        assert response.headers["location"].startswith("/login?next=")

    assert counts(settings) == before
