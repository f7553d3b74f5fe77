"""Splitting a tenant: a unit subtree, with every row assigned to it, becomes a new tenant with the
same template and modules (services.moves.carve says which rows go and how their ids change).

    dry run (plan_split: the rows each table would give, the people who follow their units,
    references cleared across the cut, refusals with why) → request_split: the new tenant
    (provisioning), the source's safety backup and the `split` job →
    lock → maintenance on → writes drained → dump → checksum → manifest → verify (the safety
    backup: portable, verified by a restore) → allocate store (the new tenant's) → copy (the
    subtree carved out of the safety backup, put into the new store the way a portable backup
    is restored) → validate (its counts and checksums against the carve) → people (memberships
    follow the units) → snapshot → remove from source → activate

The moved rows are removed from the source: only once the new tenant's store is validated, in one
transaction of the source's store that counts and hashes what remains against the carve before it
commits, so it happens whole or not at all; the safety backup, verified first, is the way back.
The source shows its maintenance page from `maintenance on` to the end, so nothing is written
that the carve would not see. A worker killed at any step resumes there; a failure before the
source gave its rows drops the new store, marks the new tenant failed and ends the maintenance:
the source is as it was.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.audit.trail import Actor, record
from services.backups.archive import extract_archive
from services.backups.content import summarise_lines, summarise_table, tenant_tables
from services.backups.dump import table_file
from services.backups.restorable import check_restorable
from services.backups.restore import Measured, differences, measure_store, restore_into
from services.backups.steps import (
    BackupRun,
    checksum,
    dump,
    record_backup_failure,
    record_manifest,
    verify,
)
from services.db import Database
from services.errors import Conflict, DomainError, FieldErrors, InvalidInput, NotFound
from services.jobs import StepFunction
from services.layers.catalogue import load_catalogue
from services.layers.ownership import TENANT_COLUMN
from services.models import (
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    Membership,
    Tenant,
    TenantStatus,
)
from services.moves.carve import UNITS, Carve, Cleared, Follower, Row, Shape, carve
from services.moves.requests import queued_portable_backup
from services.provisioning.steps import record_snapshot, reserve_new_store
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import LOCK_STEP, WRITES_DRAINED, maintenance_until, writes_drained
from services.tenancy.placement import place_new_tenant
from services.tenancy.stores import StoreLocation, drop_store, in_store_transaction, location_of
from services.tenancy.tenants import check_slug_free, register_tenant, validate_slug

SPLIT = "split"
MAINTENANCE_ON = "maintenance on"
REMOVE_FROM_SOURCE = "remove from source"
SPLIT_STEP_NAMES = [
    LOCK_STEP,
    MAINTENANCE_ON,
    WRITES_DRAINED,
    "dump",
    "checksum",
    "manifest",
    "verify",
    "allocate store",
    "copy",
    "validate",
    "people",
    "snapshot",
    REMOVE_FROM_SOURCE,
    "activate",
]
#: What becomes of the moved rows in the source, said by the dry run and the README alike.
REMOVED_FROM_SOURCE = (
    "The rows that go are removed from the source, once the new tenant's store has been checked "
    "against them, in one transaction that counts and hashes what the source keeps before it "
    "commits; a verified safety backup of the source is taken first, and is the way back."
)
PEOPLE_FOLLOW = (
    "People follow their units: everyone assigned to a unit that goes becomes a member of the new "
    "tenant with the same role and those units; someone left with no unit in the source (and not "
    "its admin) is deactivated there. Nobody else is a member of the new tenant: invite its first "
    "admin once it is active if none of its people is one."
)

#: Who the trail says split a tenant once the job is done (the request is the asker's own entry).
SPLITS = Actor(email="system:split")


# Reading a tenant's rows ---------------------------------------------------------------------------


def _read(connection: Connection, tenant_id: int | None) -> tuple[list[Shape], dict[str, list[Row]]]:
    tables = tenant_tables(connection)
    rows: dict[str, list[Row]] = {}
    for table in tables:
        sink = io.StringIO()
        summarise_table(connection, table, tenant_id=tenant_id, sink=sink)
        rows[table.name] = [json.loads(line) for line in sink.getvalue().splitlines()]
    return [Shape.of(table) for table in tables], rows


async def read_rows(location: StoreLocation, tenant: Tenant) -> tuple[list[Shape], dict[str, list[Row]]]:
    """Every table of the tenant's store and its rows in portable form (its own in a shared store)."""
    reader = Database(location.url, schema=location.schema)
    try:
        return await reader.read_whole(_read, tenant.id if location.is_shared else None)
    finally:
        await reader.dispose()


@dataclass(frozen=True)
class UnitChoice:
    id: int
    name: str
    #: How deep in the tree: 0 for the root.
    depth: int


def _units(connection: Connection, tenant_id: int | None) -> list[Row]:
    table = next(table for table in tenant_tables(connection) if table.name == UNITS)
    statement = select(table.c.id, table.c.parent_id, table.c.name)
    if tenant_id is not None:
        statement = statement.where(table.c[TENANT_COLUMN] == tenant_id)
    return [dict(row._mapping) for row in connection.execute(statement)]


async def unit_choices(settings: Settings, tenant: Tenant) -> list[UnitChoice]:
    """The tenant's units in tree order, each with its depth: the units a split may start from are
    all but the root."""
    location = location_of(settings, tenant)
    reader = Database(location.url, schema=location.schema)
    try:
        units = await reader.read_whole(_units, tenant.id if location.is_shared else None)
    finally:
        await reader.dispose()
    children: dict[Any, list[Row]] = {}
    for unit in sorted(units, key=lambda unit: (str(unit["name"]), unit["id"])):
        children.setdefault(unit["parent_id"], []).append(unit)
    ordered: list[UnitChoice] = []

    def walk(parent: Any, depth: int) -> None:
        for unit in children.get(parent, []):
            ordered.append(UnitChoice(int(unit["id"]), str(unit["name"]), depth))
            walk(unit["id"], depth + 1)

    walk(None, 0)
    return ordered


def find_unit(rows: dict[str, list[Row]], unit: str) -> Row:
    """The unit `unit` names: its id, or its name when one unit has it. NotFound, or InvalidInput
    when several have the name."""
    units = rows.get(UNITS, [])
    text = unit.strip()
    if text.isdigit():
        found = [row for row in units if row["id"] == int(text)]
    else:
        found = [row for row in units if row["name"] == text] or [
            row for row in units if str(row["name"]).casefold() == text.casefold()
        ]
    if not found:
        raise NotFound(f"There is no unit {text!r} here; give a unit's id or its name.", field="unit")
    if len(found) > 1:
        ids = ", ".join(f"#{row['id']}" for row in found)
        raise InvalidInput(f"Several units are called {text!r} ({ids}); give the id of one.", field="unit")
    return found[0]


# The dry run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitTarget:
    """The new tenant: its slug, and its name (None: the unit's)."""

    slug: str
    name: str | None = None


@dataclass(frozen=True)
class TableFigures:
    name: str
    #: Rows that leave the source for the new tenant.
    moving: int
    #: Rows copied: the source keeps them too (roles, settings, the profiles of people who follow).
    copied: int
    staying: int


@dataclass(frozen=True)
class SplitPlan:
    """What a split would do, changing nothing."""

    tenant: Tenant
    unit_id: int
    unit_name: str
    into: str
    name: str
    isolation: str
    tables: list[TableFigures]
    followers: list[Follower]
    cleared: list[Cleared]
    refusals: list[str]

    @property
    def rows_moving(self) -> int:
        return sum(table.moving for table in self.tables)

    @property
    def units(self) -> int:
        return next((table.moving for table in self.tables if table.name == UNITS), 0)

    removed_from_source = REMOVED_FROM_SOURCE
    people_follow = PEOPLE_FOLLOW


def _figures(shapes: list[Shape], rows: dict[str, list[Row]], carved: Carve) -> list[TableFigures]:
    figures = []
    for shape in shapes:
        moving, new = carved.moving.get(shape.name, 0), len(carved.new.get(shape.name, []))
        staying = len(rows.get(shape.name, [])) - moving
        if moving or new or staying:
            figures.append(TableFigures(shape.name, moving, new - moving, staying))
    return figures


async def _check_may_split(session: AsyncSession, settings: Settings, tenant: Tenant) -> None:
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        state = "in maintenance" if tenant.status == TenantStatus.MAINTENANCE else str(tenant.status)
        raise Conflict(f"{tenant.slug} is {state}; only an active tenant is split.")
    if load_catalogue(settings.layers_dir).custom(tenant.slug) is not None:
        raise Conflict(
            f"{tenant.slug} has a custom layer, written for that tenant alone; a new tenant cannot carry it."
        )
    under_way = await session.scalar(
        select(Job.id)
        .where(Job.tenant_id == tenant.id, Job.kind == SPLIT, Job.status.in_(JobStatus.unfinished()))
        .limit(1)
    )
    if under_way is not None:
        raise Conflict(f"{tenant.slug} is being split already (job #{under_way}); wait until it is done.")


def _new_isolation(tenant: Tenant) -> str:
    """A store of the new tenant's own, of the kind the source has: in a shared store its renumbered
    ids would be other tenants'."""
    return IsolationMode.DATABASE if tenant.isolation == IsolationMode.SHARED else tenant.isolation


async def plan_split(
    session: AsyncSession, settings: Settings, tenant: Tenant, unit: str, into: SplitTarget
) -> SplitPlan:
    """The split's dry run, from the tenant's store as it is now. Raises InvalidFields naming every
    wrong field (unit, into, name), Conflict (not active; a split under way; a custom layer)."""
    await _check_may_split(session, settings, tenant)
    shapes, rows = await read_rows(location_of(settings, tenant), tenant)
    errors = FieldErrors()
    found: Row | None = None
    with errors.checking("unit"):
        found = find_unit(rows, unit)
        if found["parent_id"] is None:
            raise InvalidInput(
                f"{found['name']} is the top of {tenant.slug}'s tree: that is the whole tenant. "
                "Restore a backup into a new tenant to copy all of it.",
                field="unit",
            )
    with errors.checking("into"):
        try:
            await check_slug_free(session, validate_slug(into.slug.strip()))
        except DomainError as wrong:  # said of the new tenant's slug, which is `into` here
            raise InvalidInput(wrong.message, field="into") from None
    name = (into.name or "").strip() or (str(found["name"]) if found else "")
    with errors.checking("name"):
        if len(name) > 200:
            raise InvalidInput("A tenant's name is at most 200 characters.", field="name")
    errors.raise_if_any()
    assert found is not None
    carved = carve(shapes, rows, int(found["id"]))
    return SplitPlan(
        tenant=tenant,
        unit_id=int(found["id"]),
        unit_name=str(found["name"]),
        into=into.slug.strip(),
        name=name,
        isolation=_new_isolation(tenant),
        tables=_figures(shapes, rows, carved),
        followers=carved.followers,
        cleared=carved.cleared,
        refusals=carved.refusals,
    )


# Asking --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestedSplit:
    plan: SplitPlan
    job: Job
    new_tenant: Tenant

    @property
    def message(self) -> str:
        return (
            f"{self.plan.unit_name} of {self.plan.tenant.slug} is being split off into {self.new_tenant.slug}: "
            f"{self.plan.tenant.slug} shows a maintenance page, and its API answers 503, until it is done."
        )


def refused(plan: SplitPlan) -> Conflict:
    shown = "; ".join(plan.refusals[:5]) + (
        f" (and {len(plan.refusals) - 5} more)" if len(plan.refusals) > 5 else ""
    )
    return Conflict(f"{plan.tenant.slug} cannot be split at {plan.unit_name}: {shown}.")


async def request_split(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    unit: str,
    into: SplitTarget,
    *,
    requested_by: str | None = None,
) -> RequestedSplit:
    """Make the dry run; when nothing refuses, record the new tenant (provisioning, the source's
    template and modules), the source's safety backup and the `split` job. Raises what plan_split
    raises, and Conflict naming the refusals."""
    plan = await plan_split(session, settings, tenant, unit, into)
    if plan.refusals:
        raise refused(plan)
    new = await register_tenant(
        session,
        slug=plan.into,
        name=plan.name,
        template=tenant.template,
        isolation=plan.isolation,
        modules=tenant.modules,
        kept_modules=tenant.kept_modules,
        plan_key=tenant.plan_key,
    )
    await place_new_tenant(session, settings, new)
    backup = queued_portable_backup(
        tenant, f"safety backup before splitting off {plan.unit_name}", requested_by
    )
    session.add(backup)
    await session.flush()
    job = await jobs.record_job(
        session,
        SPLIT,
        tenant_id=tenant.id,
        payload={
            "backup_id": backup.id,
            "new_tenant_id": new.id,
            "unit_id": plan.unit_id,
            "unit": plan.unit_name,
            "requested_by": requested_by,
        },
        steps=SPLIT_STEP_NAMES,
    )
    backup.job_id = job.id
    return RequestedSplit(plan, job, new)


# The job -------------------------------------------------------------------------------------------


@dataclass
class SplitRun(BackupRun):
    """What every step of one split works with: a backup run's (its backup is the source's safety
    backup), the new tenant and the unit."""

    new_tenant_id: int = 0
    unit_id: int = 0

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            **super().named_in(payload),
            "new_tenant_id": int(payload["new_tenant_id"]),
            "unit_id": int(payload["unit_id"]),
        }

    @property
    def work(self) -> Path:
        return self.settings.data_dir / "work" / f"split-{self.job_id}"

    async def new_tenant(self, session: AsyncSession) -> Tenant:
        return await session.get_one(Tenant, self.new_tenant_id)

    async def carve_backup(self, session: AsyncSession) -> tuple[list[Shape], Carve]:
        """The subtree carved out of the safety backup's rows (the tables as the source has them)."""
        backup, tenant = await self.backup(session), await self.tenant(session)
        await check_restorable(self.settings, backup)
        assert backup.storage_key is not None and backup.manifest is not None
        source = self.store(tenant)
        reader = Database(source.url, schema=source.schema)
        try:
            shapes = await reader.read_whole(
                lambda connection: [Shape.of(t) for t in tenant_tables(connection)]
            )
        finally:
            await reader.dispose()
        unpacked = self.work / "archive"
        shutil.rmtree(unpacked, ignore_errors=True)
        try:
            await asyncio.to_thread(extract_archive, self.storage, backup.storage_key, unpacked)
            rows = await asyncio.to_thread(_archive_rows, unpacked, shapes, backup.manifest)
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)
        return shapes, carve(shapes, rows, self.unit_id)


def _archive_rows(unpacked: Path, shapes: list[Shape], manifest: dict[str, Any]) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {}
    for shape in shapes:
        if shape.name in manifest["tables"]:
            with (unpacked / table_file(shape.name)).open(encoding="utf-8") as lines:
                rows[shape.name] = [json.loads(line) for line in lines if line.strip()]
    return rows


def _summaries(shapes: list[Shape], rows: dict[str, list[Row]]) -> dict[str, dict[str, Any]]:
    return {
        shape.name: summarise_lines(shape.columns, rows.get(shape.name, [])).as_json() for shape in shapes
    }


def _differences(expected: dict[str, Any], measured: Measured) -> list[str]:
    return differences({"tables": expected, "schema": {}}, measured, compare_schema=False)


async def lock(run: SplitRun, session: AsyncSession) -> str:
    said = await run.take_lock("split", why=" with this tenant")
    tenant, backup = await run.tenant(session), await run.backup(session)
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.slug} is {tenant.status}; only an active tenant is split.")
    backup.status = JobStatus.RUNNING
    new = await run.new_tenant(session)
    return f"{said}; {(await run.payload(session))['unit']} goes to {new.slug}"


async def allocate(run: SplitRun, session: AsyncSession) -> str:
    """Record where the new tenant's store goes (before it exists, so a failure can remove it)."""
    new = await run.new_tenant(session)
    return f"{await reserve_new_store(run.settings, new)} for {new.slug}"


async def copy(run: SplitRun, session: AsyncSession) -> str:
    """The subtree carved out of the verified safety backup, restored into the new tenant's store
    as a portable archive of its own is (services.backups.restore)."""
    shapes, carved = await run.carve_backup(session)
    if carved.refusals:
        raise Conflict("; ".join(carved.refusals[:5]))
    new, backup = await run.new_tenant(session), await run.backup(session)
    assert backup.manifest is not None
    _name_setting(carved.new, new.name)
    target = location_of(run.settings, new)
    folder = run.work / "new"
    shutil.rmtree(folder, ignore_errors=True)
    expected = _summaries(shapes, carved.new)
    manifest = {
        **backup.manifest,
        "format": BackupFormat.PORTABLE,
        "tables": expected,
        "totals": {"tables": len(expected), "rows": sum(len(rows) for rows in carved.new.values())},
    }
    try:
        await asyncio.to_thread(_write_tables, folder, carved.new)
        await drop_store(
            target
        )  # ours (recorded before it was made), left half-built by an attempt that died
        await restore_into(run.settings, manifest, folder, target, tenant_id=new.id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    await run.remember(
        session,
        expected_new=expected,
        expected_rest=_summaries(shapes, carved.rest),
        moving=carved.moving,
        followers=[follower.__dict__ for follower in carved.followers],
        cleared=[str(cleared) for cleared in carved.cleared],
    )
    copied = sum(len(rows) for rows in carved.new.values()) - carved.rows_moving
    return (
        f"{carved.rows_moving:,} rows of {len([n for n, c in carved.moving.items() if c])} tables carved out of "
        f"safety backup #{backup.id} and put into {target.name}, ids renumbered"
        + (f", with {copied:,} copied rows (roles, settings, people)" if copied else "")
        + (f"; {len(carved.cleared)} references across the cut cleared" if carved.cleared else "")
    )


def _name_setting(rows: dict[str, list[Row]], name: str) -> None:
    settings = rows.setdefault("settings", [])
    named = [row for row in settings if row.get("key") == "name"]
    if named:
        named[0]["value"] = name
    else:
        settings.append({"key": "name", "value": name})


def _write_tables(folder: Path, rows: dict[str, list[Row]]) -> None:
    for name, table_rows in rows.items():
        path = folder / table_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as sink:
            for row in table_rows:
                sink.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


async def validate(run: SplitRun, session: AsyncSession) -> str:
    """The new tenant's store against the carve, table by table: counts and checksums."""
    new, payload = await run.new_tenant(session), await run.payload(session)
    measured = await measure_store(location_of(run.settings, new))
    if found := _differences(payload["expected_new"], measured):
        raise Conflict(f"The new tenant's store does not hold what was carved: {'; '.join(found[:8])}")
    rows = sum(summary["rows"] for summary in payload["expected_new"].values())
    return f"{len(payload['expected_new'])} tables, {rows:,} rows and their checksums match the carve"


async def people(run: SplitRun, session: AsyncSession) -> str:
    """Memberships follow the units: each active follower is a member of the new tenant, with
    their role in the source (their profile and units came with the rows)."""
    new, payload = await run.new_tenant(session), await run.payload(session)
    followers = [Follower(**follower) for follower in payload["followers"]]
    members = {
        membership.user_id: membership
        for membership in await session.scalars(
            select(Membership).where(Membership.tenant_id == run.tenant_id)
        )
    }
    joined = 0
    for follower in followers:
        source = members.get(follower.account_id)
        if source is None or not follower.active:
            continue
        present = await session.scalar(
            select(Membership.id).where(
                Membership.tenant_id == new.id, Membership.user_id == follower.account_id
            )
        )
        if present is None:
            session.add(Membership(user_id=follower.account_id, tenant_id=new.id, role=source.role))
        joined += 1
    leaving = sum(follower.leaves_source for follower in followers)
    return (
        f"{joined} of {len(followers)} people assigned to its units are members of {new.slug}; "
        f"{leaving} left with no unit in the source are deactivated there when the rows go"
    )


async def snapshot(run: SplitRun, session: AsyncSession) -> str:
    new = await run.new_tenant(session)
    _, detail = await record_snapshot(session, new, location_of(run.settings, new))
    return detail


async def _source_gave_its_rows(run: SplitRun, tenant: Tenant, payload: dict[str, Any]) -> bool:
    """Whether the source holds exactly what the carve leaves it: the rows went already."""
    if "expected_rest" not in payload:
        return False
    source = run.store(tenant)
    measured = await measure_store(source, tenant_id=tenant.id if source.is_shared else None)
    return not _differences(payload["expected_rest"], measured)


async def remove_from_source(run: SplitRun, session: AsyncSession) -> str:
    """The rows that went, out of the source in one transaction of its store, which counts and
    hashes what remains against the carve before it commits; the memberships of people left with
    no unit there end in this step's landlord commit."""
    tenant, payload = await run.tenant(session), await run.payload(session)
    source = run.store(tenant)
    if await _source_gave_its_rows(run, tenant, payload):
        said = "the source had given its rows already (a resumed split)"
    else:
        shapes, carved = await run.carve_backup(session)
        owner = tenant.id if source.is_shared else None
        await in_store_transaction(source, _remove, shapes, carved, owner, payload["expected_rest"])
        said = f"{carved.rows_moving:,} rows removed from {tenant.slug} in one transaction, checked before it committed"
    leavers = [Follower(**follower) for follower in payload["followers"] if follower["leaves_source"]]
    for follower in leavers:
        membership = await session.scalar(
            select(Membership).where(
                Membership.tenant_id == tenant.id, Membership.user_id == follower.account_id
            )
        )
        if membership is not None:
            await session.delete(membership)
    await run.remember(session, removed=True)
    return said + (f"; {len(leavers)} people left with no unit there deactivated" if leavers else "")


def _remove(
    connection: Connection,
    shapes: list[Shape],
    carved: Carve,
    tenant_id: int | None,
    expected: dict[str, Any],
) -> None:
    tables = {table.name: table for table in tenant_tables(connection)}
    owned = (
        (lambda table: table.c[TENANT_COLUMN] == tenant_id) if tenant_id is not None else (lambda _t: true())
    )
    for shape in shapes:  # references to the rows that go cleared first, paths and profiles changed
        if changed := carved.changed_in_source(shape):
            table = tables[shape.name]
            for key, changes in changed:
                where = (table.c[column] == value for column, value in key.items())
                connection.execute(update(table).where(owned(table), *where).values(changes))
    for shape in reversed(shapes):
        leaving = _leaving_rows(shape, carved)
        if not leaving:
            continue
        table = tables[shape.name]
        statement = delete(table).where(
            owned(table), *(table.c[key] == bindparam(f"k_{key}") for key in shape.keys)
        )
        connection.execute(statement, [{f"k_{key}": row[key] for key in shape.keys} for row in leaving])
    measured = {
        name: summarise_table(connection, tables[name], tenant_id=tenant_id).as_json()
        for name in expected
        if name in tables
    }
    found = [
        f"{name}: {measured[name]['rows']} rows, the carve leaves {summary['rows']}"
        if measured[name]["rows"] != summary["rows"]
        else f"{name}: same row count, different content"
        for name, summary in expected.items()
        if name in measured
        and (measured[name]["rows"], measured[name]["sha256"]) != (summary["rows"], summary["sha256"])
    ]
    if found:
        raise Conflict(
            f"The source would not keep what the carve leaves it, so nothing was removed: {'; '.join(found[:8])}"
        )


def _leaving_rows(shape: Shape, carved: Carve) -> list[Row]:
    """The source's rows of the table that go, children before their parents in a tree."""
    leaving = carved.leaving.get(shape.name, [])
    parent = next((ref.column for ref in shape.references if ref.table == shape.name), None)
    if parent is None or shape.id is None:
        return leaving
    by_id = {row[shape.id]: row for row in leaving}

    def depth(row: Row) -> int:
        found, seen = 0, row
        while (up := seen.get(parent)) in by_id:
            found, seen = found + 1, by_id[up]
        return found

    return sorted(leaving, key=depth, reverse=True)


async def activate(run: SplitRun, session: AsyncSession) -> str:
    """The new tenant is active, the source leaves its maintenance, and the trail says what the split did."""
    tenant, new, payload = (
        await run.tenant(session),
        await run.new_tenant(session),
        await run.payload(session),
    )
    new.status, new.error = TenantStatus.ACTIVE, None
    tenant.status = TenantStatus.ACTIVE
    rows = sum(payload["moving"].values())
    detail = {
        "unit": payload["unit"],
        "into": new.slug,
        "rows": rows,
        "tables": sum(1 for count in payload["moving"].values() if count),
        "people": len(payload["followers"]),
        "cleared": len(payload["cleared"]),
        "backup": run.backup_id,
        "job": run.job_id,
    }
    await record(
        session,
        action="tenant.split_off",
        actor=SPLITS,
        tenant_id=tenant.id,
        target=tenant.slug,
        detail=detail,
    )
    return f"{new.slug} is active with {rows:,} rows; {tenant.slug} is active again"


SPLIT_STEPS: list[tuple[str, StepFunction[SplitRun]]] = [
    (LOCK_STEP, lock),
    (MAINTENANCE_ON, maintenance_until("the split is done")),
    (WRITES_DRAINED, writes_drained),
    ("dump", dump),
    ("checksum", checksum),
    ("manifest", record_manifest),
    ("verify", verify),
    ("allocate store", allocate),
    ("copy", copy),
    ("validate", validate),
    ("people", people),
    ("snapshot", snapshot),
    (REMOVE_FROM_SOURCE, remove_from_source),
    ("activate", activate),
]
assert [name for name, _ in SPLIT_STEPS] == SPLIT_STEP_NAMES


async def _undo(run: SplitRun, failure: Exception) -> None:
    """After a failure (not an interruption): before the source gave its rows, the new tenant's
    store goes and the new tenant is failed; after, the split stands and is finished. Either way
    the source leaves its maintenance."""
    error = getattr(failure, "message", None) or str(failure) or type(failure).__name__
    async with run.landlord.session() as session:
        tenant, new, payload = (
            await run.tenant(session),
            await run.new_tenant(session),
            await run.payload(session),
        )
        if payload.get("removed") or await _source_gave_its_rows(run, tenant, payload):
            new.status, new.error = TenantStatus.ACTIVE, None
        else:
            if new.store_name is not None:
                await drop_store(location_of(run.settings, new))
            new.store_backend = new.store_name = None
            new.status, new.error = TenantStatus.FAILED, f"the split of {tenant.slug} stopped: {error}"
        if tenant.status == TenantStatus.MAINTENANCE:
            tenant.status = TenantStatus.ACTIVE
    await record_backup_failure(run, "the split it was taken for stopped first")


@jobs.job_handler(SPLIT, server_work=ServerWork.RESTORE)
async def split_tenant(database: Database, job: Job, settings: Settings) -> None:
    await SplitRun.of(database, job, settings).run_holding_the_lock(SPLIT_STEPS, on_failure=_undo)
