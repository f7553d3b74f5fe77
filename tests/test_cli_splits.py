"""`tenantry split`, run as an operator runs it (the installed entry point, in subprocesses) on a
fresh SQLite installation with the embedded broker: the dry run prints what would move and changes
nothing; the split runs in the command, saying each step; mistakes are one line and exit 2."""

from __future__ import annotations

import pytest

from services.moves.split import PEOPLE_FOLLOW, REMOVED_FROM_SOURCE, SPLIT_STEP_NAMES
from services.settings import Settings
from tests.services.running import migrate
from tests.support import installation_settings
from tests.test_cli import refused, succeeded, tenantry
from tests.web.tenant_world import add_member, add_rows, add_units, provision
from tests.workers.support import tenant


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("splits") / "data"
    data_dir.mkdir()
    return migrate(installation_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}"))


def test_a_dry_run_then_a_split_said_step_by_step(installation: Settings) -> None:
    slug = "harbour-club"
    provision(installation, slug, modules=["events"])
    units = add_units(installation, slug, [("North", None), ("Ward", "North")])
    add_rows(
        installation, slug, "venues", [{"name": "Boat House", "unit_id": units["Ward"]}, {"name": "Pier"}]
    )
    add_member(installation, slug, "wanda@harbour.example", unit_ids=[units["Ward"]])

    dry = succeeded(
        tenantry(installation, "split", slug, "--unit", "North", "--into", "north-harbour", "--dry-run")
    )

    assert dry.startswith(f"Split North (unit #{units['North']}) of {slug} off into north-harbour (North, ")
    assert "  units: 2, 0, 1\n" in dry and "  venues: 1, 0, 1\n" in dry
    assert "  wanda@harbour.example (tenant_member): deactivated in the source\n" in dry
    assert REMOVED_FROM_SOURCE in dry and PEOPLE_FOLLOW in dry
    assert tenant(installation, slug).status == "active"

    out = succeeded(
        tenantry(installation, "split", slug, "--unit", str(units["North"]), "--into", "north-harbour")
    )

    said = out.split("Split job #", 1)[1].splitlines()[1:-1]
    assert [line.split(":", 1)[0].strip() for line in said] == SPLIT_STEP_NAMES
    assert out.endswith(f"Split: north-harbour is active; {slug} is active again.\n")
    assert tenant(installation, "north-harbour").status == "active"


def test_mistakes_are_one_line_and_exit_2(installation: Settings) -> None:
    slug = "otter-rescue"
    provision(installation, slug, modules=["events"])
    add_units(installation, slug, [("East", None)])

    assert "There is no unit 'West' here" in refused(
        tenantry(installation, "split", slug, "--unit", "West", "--into", "west-otters")
    )
    assert "the whole tenant" in refused(
        tenantry(installation, "split", slug, "--unit", "1", "--into", "all-otters", "--dry-run")
    )
    assert "is taken" in refused(tenantry(installation, "split", slug, "--unit", "East", "--into", slug))
    assert "no-such-tenant" in refused(
        tenantry(installation, "split", "no-such-tenant", "--unit", "East", "--into", "x-y")
    )
    assert tenant(installation, slug).status == "active"


def test_a_tenant_merged_into_another_from_the_command_line(installation: Settings) -> None:
    provision(installation, "seal-club", modules=["events"])
    provision(installation, "puffin-club", modules=["events"])
    add_rows(installation, "seal-club", "venues", [{"name": "Seal Rock"}])

    dry = succeeded(tenantry(installation, "merge", "seal-club", "--into", "puffin-club", "--dry-run"))
    assert dry.startswith("Merge seal-club into puffin-club: ") and "  venues: 1\n" in dry

    out = succeeded(tenantry(installation, "merge", "seal-club", "--into", "puffin-club"))
    assert out.endswith("Merged: seal-club's rows are in puffin-club; seal-club is as it was.\n")
    assert "There is no tenant 'nowhere' to merge into." in refused(
        tenantry(installation, "merge", "seal-club", "--into", "nowhere")
    )
