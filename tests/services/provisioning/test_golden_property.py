"""A golden image is only an optimisation: for any template and any valid module choice, a tenant
cloned from the image has exactly the schema of one whose migrations were replayed, and both have
exactly the schema the layers give when applied directly, one after another."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.layers.migrator import upgrade_layer
from services.models import JobStatus, TenantStatus
from services.tenancy.stores import allocate_store, plan_store
from tests.services.provisioning.installation import (
    POSTGRES_DATABASE,
    SQLITE_DATABASE,
    Landlord,
    catalogue,
    fresh_installation,
    store_snapshot,
)
from tests.support import requires_postgres


def _without(chosen: set[str], dropped: str) -> set[str]:
    """`chosen` without `dropped` and without every module that needs it, directly or not."""
    modules = catalogue().modules
    left = chosen - {dropped}
    while broken := {name for name in left if not set(modules[name].requires) <= left}:
        left -= broken
    return left


@st.composite
def recipes(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """A template and a valid module set, built the way an admin fixes a form: pick some modules,
    add what they require, give up one side of each conflict. The set comes in two orders, as two
    admins might tick the same boxes."""
    found = catalogue()
    template = draw(st.sampled_from(sorted(found.templates)))
    chosen = set(draw(st.sets(st.sampled_from(sorted(found.modules)))))
    missing = list(chosen)
    while missing:
        for requirement in found.modules[missing.pop()].requires:
            if requirement not in chosen:
                chosen.add(requirement)
                missing.append(requirement)
    for name in sorted(chosen):
        for other in sorted(found.modules[name].conflicts):
            if name in chosen and other in chosen:
                chosen = _without(chosen, draw(st.sampled_from([name, other])))
    first = draw(st.permutations(sorted(chosen)))
    second = draw(st.permutations(first))
    return template, list(first), list(second)


async def replay_and_clone(landlord: Landlord, template: str, first: list[str], second: list[str]) -> None:
    replayed, replay_job = await landlord.provision("harbour-one", template, first)
    cloned, clone_job = await landlord.provision("harbour-two", template, second)

    assert (replay_job.status, clone_job.status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)
    assert (replayed.status, cloned.status) == (TenantStatus.ACTIVE, TenantStatus.ACTIVE)
    replay_steps = {step.name: step.detail or "" for step in replay_job.steps}
    clone_steps = {step.name: step.detail or "" for step in clone_job.steps}
    assert replay_steps["allocate store"].startswith("empty "), "the first tenant replays"
    assert "kept as golden image" in replay_steps["snapshot"]
    assert clone_steps["allocate store"].startswith("cloned golden image "), "the second is cloned"

    _, replay_sha = await store_snapshot(landlord.store(replayed))
    _, clone_sha = await store_snapshot(landlord.store(cloned))
    recorded = {
        tenant.slug: [snapshot.sha256 for snapshot in await landlord.snapshots(tenant.id)]
        for tenant in (replayed, cloned)
    }
    assert recorded == {"harbour-one": [replay_sha], "harbour-two": [clone_sha]}

    # The same layers applied directly to an empty store, in the order the catalogue resolves.
    found = catalogue()
    direct = plan_store(landlord.settings, "direct", landlord.isolation, purpose="reference")
    await allocate_store(direct)
    store = direct.open()
    try:
        for layer in found.layers_for(template, found.resolve_modules(template, first)):
            await upgrade_layer(store, layer, record=_ignore)
    finally:
        await store.dispose()
    _, direct_sha = await store_snapshot(direct)

    assert clone_sha == replay_sha, f"{template} + {first}: the clone differs from the replay"
    assert replay_sha == direct_sha, f"{template} + {first}: provisioning differs from the layers"


async def _ignore(_run: object) -> None:
    return None


def _check(mode: str, pristine: Path | str, template: str, first: list[str], second: list[str]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-golden-") as folder,
        fresh_installation(mode, Path(folder), pristine) as installation,
    ):
        installation.run(lambda landlord: replay_and_clone(landlord, template, first, second))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes())
def test_a_cloned_tenant_is_identical_to_a_replayed_one_on_sqlite(
    migrated_sqlite_landlord: Path, recipe: tuple[str, list[str], list[str]]
) -> None:
    _check(SQLITE_DATABASE, migrated_sqlite_landlord, *recipe)


@requires_postgres
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes())
def test_a_cloned_tenant_is_identical_to_a_replayed_one_in_postgresql_databases(
    migrated_postgres_landlord: str, recipe: tuple[str, list[str], list[str]]
) -> None:
    _check(POSTGRES_DATABASE, migrated_postgres_landlord, *recipe)


def test_every_drawn_module_set_is_one_the_catalogue_accepts() -> None:
    """The strategy only draws what an admin could submit: resolving it never refuses it."""

    @settings(max_examples=200, deadline=None)
    @given(recipe=recipes())
    def accepted(recipe: tuple[str, list[str], list[str]]) -> None:
        template, first, second = recipe
        found = catalogue()
        assert found.resolve_modules(template, first) == found.resolve_modules(template, second)

    accepted()
