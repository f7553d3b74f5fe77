"""`tenantry move-plan …`, run as an operator runs it (the installed entry point, in subprocesses) on
one fresh SQLite installation the tests share, each selecting tenants of its own: the dry run names
every tenant, its batch and rows, and every refusal with why; with the embedded broker `start` moves
the tenants in the command and prints the plan's report; mistakes are one line and exit 2."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import IsolationMode, MovePlan, Tenant, TenantStatus
from services.moves.plans import list_plans
from services.settings import Settings
from tests.services.provisioning.installation import copy_layers
from tests.services.rollouts.test_rollouts import add_events_revision
from tests.services.running import migrate, run_tenantry, tenantry_env
from tests.support import installation_settings, run_db
from tests.test_cli import refused, succeeded, tenantry
from tests.test_cli_moves import contents, provisioned
from tests.web.tenant_world import provision
from tests.workers.support import tenant

#: The report's first line: the plan, its status, its tenants and where they go.
PLAN_LINE = re.compile(r"^Move plan #(\d+): (\w+) — (.+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh installation: the landlord migrated, tenants' stores SQLite files, the embedded broker."""
    data_dir = tmp_path_factory.mktemp("move-plans") / "data"
    data_dir.mkdir()
    return migrate(installation_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}"))


def suspended(settings: Settings, slug: str) -> str:
    async def suspend(session: AsyncSession) -> None:
        await session.execute(update(Tenant).where(Tenant.slug == slug).values(status=TenantStatus.SUSPENDED))

    run_db(settings, suspend)
    return slug


def row_counts(settings: Settings, slug: str) -> dict[str, int]:
    """Rows per table of the tenant, wherever its store is (in a shared store some get new ids)."""
    return {table: count for table, (count, _sha256) in contents(settings, slug).items()}


def recorded_plans(settings: Settings) -> list[MovePlan]:
    async def read(session: AsyncSession) -> list[MovePlan]:
        return [plan for plan, _counts in await list_plans(session)]

    return run_db(settings, read)


def test_the_dry_run_names_each_tenant_its_batch_and_rows_and_each_refusal_with_why(
    installation: Settings,
) -> None:
    alder, birch = provisioned(installation, "alder-club"), provisioned(installation, "birch-club")
    cedar = suspended(installation, provisioned(installation, "cedar-club"))
    plans_before = len(recorded_plans(installation))
    rows = sum(count for count, _ in contents(installation, alder).values())

    out = succeeded(
        tenantry(
            installation,
            *("move-plan", "dry-run", "--to", "shared", "--batch-size", "1", "--concurrency", "1"),
            *("--tenant", alder, "--tenant", birch, "--tenant", cedar),
        )
    )

    lines = out.splitlines()
    assert lines[0] == (
        f"Move plan, dry run: tenants {alder}, {birch}, {cedar} → shared; nothing is recorded."
    )
    assert re.fullmatch(
        rf"  2 tenant\(s\) in 2 batch\(es\) of up to 1, 1 at a time; {2 * rows:,} rows; estimated "
        r"\d+\.\d s \((guessed: no move has been measured here yet|from \d+ move\(s\) measured here: .+)\)",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf"  batch 1: {alder} → the shared SQLite store; {rows:,} rows \(.*venues 3.*\)", lines[2]
    ), lines[2]
    assert lines[3].startswith(f"  batch 2: {birch} → the shared SQLite store; {rows:,} rows (")
    assert lines[4] == f"  refused: {cedar} — {cedar} is suspended; only an active tenant moves."
    assert lines[5:] == ["  It halts after 1 failed tenant(s)."]
    assert len(recorded_plans(installation)) == plans_before
    assert tenant(installation, alder).isolation == IsolationMode.DATABASE


def test_start_moves_the_tenants_here_prints_the_report_and_status_shows_it_again(
    installation: Settings,
) -> None:
    elm, fir = provisioned(installation, "elm-club"), provisioned(installation, "fir-club")
    before = {slug: row_counts(installation, slug) for slug in (elm, fir)}
    rows = sum(count for counts in before.values() for count in counts.values())

    out = succeeded(
        tenantry(
            installation,
            *("move-plan", "start", "--to", "shared", "--concurrency", "2", "--no-halt"),
            *("--tenant", elm, "--tenant", fir),
        )
    )

    [(plan_id, status, what)] = PLAN_LINE.findall(out)
    running_here, report = out.split("\n", 1)
    assert (
        running_here == f"Move plan #{plan_id}: its moves run here; its report follows when they have ended."
    )
    assert (status, what) == ("finished", f"tenants {elm}, {fir} → shared"), out
    assert re.search(
        rf"^  2 moved; {rows:,} rows moved; writes waited p50 \d+\.\d s, p95 \d+\.\d s$", out, re.MULTILINE
    ), out
    for slug in (elm, fir):
        assert re.search(
            rf"^  batch 1: {slug}: moved in \d+\.\d s; [\d,]+ rows, its writes waited \d+\.\d s$",
            out,
            re.MULTILINE,
        ), out
        moved = tenant(installation, slug)
        assert (moved.status, moved.isolation) == (TenantStatus.ACTIVE, IsolationMode.SHARED)
        assert row_counts(installation, slug) == before[slug]

    assert succeeded(tenantry(installation, "move-plan", "status", plan_id)) == report
    listed = succeeded(tenantry(installation, "move-plan", "status"))
    assert f"Move plan #{plan_id}: finished — tenants {elm}, {fir} → shared\n  2 moved; started " in listed


def test_mistakes_exit_2_with_one_line_and_no_traceback(installation: Settings) -> None:
    cases = {
        (
            *("move-plan", "dry-run", "--to", "schema", "--server", "pg-z", "--batch-size", "0"),
        ): "tenantry: There is no tenant server 'pg-z' here; the servers are: none. Batch size must be "
        "at least 1.",
        ("move-plan", "start", "--to", "shared", "--tenant", "no-such-club"): "tenantry: Nothing to move: "
        "no selected tenant can move there.",
        ("move-plan", "status", "9999"): "tenantry: There is no move plan #9999.",
        ("move-plan", "pause", "9999"): "tenantry: There is no move plan #9999.",
    }
    env = tenantry_env(installation)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: run_tenantry(args, env), cases))

    for (args, message), result in zip(cases.items(), results, strict=True):
        assert refused(result) == message, args


def test_a_failed_move_halts_the_plan_exits_1_and_leaves_the_tenant_where_it_was(tmp_path: Path) -> None:
    """The shared store's tenants are at a newer revision of the events module than the first tenant
    moving in: its move fails, the plan halts, and the next batch's tenant waits for a resume."""
    layers = copy_layers(tmp_path)
    data_dir = tmp_path / "data"
    settings = migrate(
        replace(
            installation_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}"),
            layers_dir=layers,
        )
    )
    behind, waiting = provisioned(settings, "harbour-club"), provisioned(settings, "pier-club")
    add_events_revision(layers)
    provision(settings, "reed-club", isolation=IsolationMode.SHARED, modules=["events"])

    result = tenantry(
        settings,
        *("move-plan", "start", "--to", "shared", "--batch-size", "1"),
        *("--tenant", behind, "--tenant", waiting),
    )

    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    [(plan_id, status, _what)] = PLAN_LINE.findall(result.stdout)
    assert status == "halted"
    assert result.stderr == f"tenantry: move plan #{plan_id} is halted; 1 tenant(s) failed to move.\n"
    assert "  Halted: 1 tenant(s) failed to move (the rule: halt after 1).\n" in result.stdout
    assert re.search(
        rf"^  batch 1: {behind}: failed in \d+\.\d s: .*The shared store has modules/events at revision "
        rf"events_0003 and {behind} at events_0002",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert re.search(rf"^  batch 2: {waiting}: queued; \d+ rows to move$", result.stdout, re.MULTILINE)
    assert [tenant(settings, slug).isolation for slug in (behind, waiting)] == [IsolationMode.DATABASE] * 2
