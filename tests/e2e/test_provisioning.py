"""Creating a tenant in a real browser against a real `tenantry serve`: the template pre-ticks its
modules in place, a mistake is shown inline, and the tenant page follows the provisioning job live
until the tenant is active. The server runs with a copy of layers/ in which the new tenant's custom
layer waits at a gate, so the page is seen half-way through, whatever the machine's speed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, Response, expect

import tests.e2e.conftest as e2e
from services.provisioning.tenants import PROVISIONING_STEP_NAMES
from tests.e2e.test_landlord_portal import assert_not_reloaded, main_nav, mark_page, sign_in
from tests.services.running import wait_for
from tests.workers.support import GATE_VARIABLE, Gate, layers_with_gate

if TYPE_CHECKING:
    from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SLUG = "green-valley"
NAME = "Green Valley Party"
TEMPLATE = "political_party"
DEFAULT_MODULES = ["membership_tiers", "events", "election_campaign"]
STEPS = len(PROVISIONING_STEP_NAMES)


@pytest.fixture(scope="module")
def gated_layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Gate]:
    return layers_with_gate(tmp_path_factory.mktemp("layers"), SLUG)


@pytest.fixture(scope="module", autouse=True)
def server_uses_gated_layers(gated_layers: tuple[Path, Gate]) -> Iterator[None]:
    """The conftest's `server` builds its environment with `_server_env`, which keeps every
    TENANTRY_* of ours out; for this module it also names the gated layers (an autouse fixture runs
    before the module's `server` is started)."""
    layers, gate = gated_layers
    plain = e2e._server_env

    def with_layers(data_dir: Path) -> dict[str, str]:
        return {**plain(data_dir), "TENANTRY_LAYERS_DIR": str(layers), GATE_VARIABLE: str(gate.path)}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e2e, "_server_env", with_layers)
        yield


@pytest.fixture
def gate(gated_layers: tuple[Path, Gate]) -> Iterator[Gate]:
    """Shut until the test opens it; opened on the way out whatever happened."""
    _, gate = gated_layers
    gate.close()
    try:
        yield gate
    finally:
        gate.open()


def module_box(page: Page, name: str) -> Any:
    return page.locator(f'#new-tenant-form input[name="modules"][value="{name}"]')


def step_badge(page: Page, step: str) -> Any:
    return page.locator(f'#job-steps li[data-step="{step}"] .badge')


def test_superadmin_creates_a_tenant_and_watches_it_provision(
    page: Page, server: Server, gate: Gate, artifacts: Path
) -> None:
    base = server.base_url
    sign_in(page, server.superadmin)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")

    # Tenants → New tenant: the three templates, no module ticked yet.
    main_nav(page).get_by_role("link", name="Tenants").click()
    page.get_by_role("link", name="New tenant").click()
    expect(page).to_have_url(f"{base}/tenants/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("New tenant")
    form = page.locator("#new-tenant-form")
    template = form.locator('select[name="template"]')
    expect(template.locator("option")).to_have_count(4)
    expect(form.locator('input[name="modules"]:checked')).to_have_count(0)

    # Picking a template ticks its default modules, swapped in without a reload.
    mark_page(page)
    template.select_option(TEMPLATE)
    for name in DEFAULT_MODULES:
        expect(module_box(page, name)).to_be_checked()
    expect(form.locator('input[name="modules"]:checked')).to_have_count(len(DEFAULT_MODULES))
    assert_not_reloaded(page)

    # A reserved slug and a missing requirement: both shown inline, in place, nothing created.
    form.locator('input[name="slug"]').fill("admin")
    form.locator('input[name="name"]').fill(NAME)
    module_box(page, "events").uncheck()
    form.get_by_role("button", name="Create tenant").click()
    expect(page.locator("#slug-error")).to_have_text("The slug 'admin' is reserved.")
    expect(page.locator("#modules-error")).to_contain_text("Election campaign needs Events")
    expect(form.get_by_role("alert")).to_contain_text("Nothing was created")
    expect(form.locator('input[name="slug"]')).to_have_attribute("aria-invalid", "true")
    expect(form.locator('input[name="name"]')).to_have_value(NAME)
    expect(template).to_have_value(TEMPLATE)
    expect(module_box(page, "events")).not_to_be_checked()
    expect(module_box(page, "election_campaign")).to_be_checked()
    assert_not_reloaded(page)
    expect(page).to_have_url(f"{base}/tenants/new")
    page.screenshot(path=str(artifacts / "provisioning-form-errors.png"), full_page=True)

    # Fixed: the tenant page, following the job while the custom layer waits at the gate.
    form.locator('input[name="slug"]').fill(SLUG)
    module_box(page, "events").check()
    form.get_by_role("button", name="Create tenant").click()
    expect(page).to_have_url(f"{base}/tenants/{SLUG}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)
    expect(page.locator("#tenant-status")).to_have_text("provisioning")
    mark_page(page)
    wait_for(gate.reached.exists, 60, what="provisioning to reach the gate", interval=0.1)

    def is_poll(response: Response) -> bool:
        request = response.request
        return (
            request.method == "GET"
            and response.url == f"{base}/tenants/{SLUG}"
            and request.headers.get("hx-request") == "true"
        )

    with page.expect_response(is_poll) as polled:
        pass  # the page polls every second by itself
    assert polled.value.status == 200
    assert "hx-refresh" not in polled.value.headers, "the job is still held at the gate"
    expect(step_badge(page, "custom")).to_have_text("running")
    for step in ("validate", "allocate store", "basic", "template", "modules"):
        expect(step_badge(page, step)).to_have_text("succeeded")
    for step in ("snapshot", "seed", "health check", "activate"):
        expect(step_badge(page, step)).to_have_text("pending")
    expect(page.locator("#job-status")).to_have_text("running")
    assert_not_reloaded(page)
    page.screenshot(path=str(artifacts / "provisioning-running.png"), full_page=True)

    # The gate opens: the job finishes, the page refreshes itself once and shows the tenant active.
    gate.open()
    expect(page.locator("#tenant-status")).to_have_text("active")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#job-steps .badge")).to_have_text(["succeeded"] * STEPS)
    expect(page.locator("#snapshot-hash")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    layers = page.locator("#layers tbody tr")
    expect(layers).to_have_count(2 + len(DEFAULT_MODULES) + 1)  # basic, template, modules, custom
    expect(page.locator("#layers")).to_contain_text(f"templates/{TEMPLATE}")
    expect(page.locator("#layers")).to_contain_text(f"custom/{SLUG}")
    expect(page.locator("#layers")).not_to_contain_text("behind")
    expect(page.locator("#history tbody tr").first).to_be_visible()
    expect(page.locator("#tenant-progress")).not_to_have_attribute("hx-trigger", re.compile("every"))
    page.screenshot(path=str(artifacts / "provisioning.png"), full_page=True)
