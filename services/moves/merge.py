"""Merging a tenant into another: tenant A's rows go into tenant B under a new unit for A's root,
ids remapped (services.moves.carve's tables and paths, the other way round).

    dry run (plan_merge: the rows each table brings, unique values that clash and how each is
    resolved or why it is refused, the people who come along) → request_merge: the `merge` job on B →
    lock (B's, then A's) → maintenance on (both) → writes drained (both) → A's safety backup (dump,
    checksum, manifest, verify) → B's safety backup (likewise) → plan (what B holds afterwards,
    counted and hashed, kept in the job) → merge (A's rows into B's store in one transaction that
    checks B against that before it commits) → people (A's members become B's) → snapshot →
    maintenance off

- A's root unit becomes a unit under B's root (its name, or its name and A's slug where B's root
  has a unit of that name); A's tree and every row of its template's and modules' tables follow,
  each given an id after every id B's store handed out, references following.
- Roles are matched by key; A's people are matched to B's by account (or email) and keep their
  units from A; others come in as B's people. B's settings and log stay; A's do not come along.
- A unique value of A's that B holds already is resolved by adding A's slug to it, where the value
  is text and the column has room; otherwise the merge is refused, naming the row.
- A is not changed: its rows are copied. Suspend or delete it once B is right; both safety backups
  are the way back.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Table, UniqueConstraint, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.audit.trail import Actor, record
from services.backups.content import (
    continue_ids,
    last_ids,
    load_table,
    summarise_lines,
    summarise_table,
    tenant_tables,
)
from services.backups.restore import measure_store
from services.backups.steps import BackupRun, checksum, dump, record_backup_failure, record_manifest, verify
from services.db import Database
from services.errors import Conflict, InvalidInput
from services.jobs import StepFunction, say_in_step
from services.layers.ownership import TENANT_COLUMN
from services.models import Backup, Job, JobStatus, Membership, Tenant, TenantStatus
from services.moves.carve import PROFILES, UNITS, Row, Shape, make_paths
from services.moves.requests import queued_portable_backup
from services.provisioning.steps import record_snapshot
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import LOCK_STEP, WRITES_DRAINED, StoreJob
from services.tenancy.barrier import wait_for_writes_in_flight
from services.tenancy.stores import StoreLocation, in_store_transaction, location_of
from services.tenant_locks import acquire_tenant_lock, let_go, release_tenant_lock

MERGE = "merge"
ROLES = "roles"
#: B keeps its own; A's do not come along.
NOT_MERGED = ("settings", "audit_entries")
MERGE_STEP_NAMES = [
    LOCK_STEP,
    "maintenance on",
    WRITES_DRAINED,
    "source dump",
    "source checksum",
    "source manifest",
    "source verify",
    "target dump",
    "target checksum",
    "target manifest",
    "target verify",
    "plan",
    "merge",
    "people",
    "snapshot",
    "maintenance off",
]
A_IS_KEPT = (
    "The tenant merged in is not changed: its rows are copied. Suspend or delete it once the other "
    "is right; a verified safety backup of each is taken first, and is the way back."
)
MERGES = Actor(email="system:merge")


@dataclass(frozen=True)
class Unique:
    """A unique constraint of a table, the tenant column left out, and each column's room for text."""

    columns: tuple[str, ...]
    lengths: dict[str, int | None]


def uniques_of(table: Table) -> list[Unique]:
    found = []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            columns = tuple(column.name for column in constraint.columns if column.name != TENANT_COLUMN)
            lengths = {
                column.name: column.type.length if isinstance(column.type, String) else None
                for column in constraint.columns
                if column.name != TENANT_COLUMN
            }
            if columns:
                found.append(Unique(columns, lengths))
    return found


@dataclass
class Combined:
    """A's rows as they go into B, and what the dry run says of them."""

    #: Per table, A's rows with their ids in B and references followed, parents first.
    rows: dict[str, list[Row]] = field(default_factory=dict)
    #: Unique values of A's B holds already, each with how it is resolved.
    renamed: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    #: A's people who are B's people already (by account or email).
    matched_people: int = 0

    @property
    def rows_coming(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def combine(
    shapes: list[Shape],
    uniques: dict[str, list[Unique]],
    a_rows: dict[str, list[Row]],
    b_rows: dict[str, list[Row]],
    a_slug: str,
    handed_out: dict[str, int],
) -> Combined:
    """A's rows (`a_rows`) as they go into B (`b_rows`, whose ids so far are `handed_out`), shapes in
    load order (parents first)."""
    result = Combined()
    ids: dict[str, dict[Any, Any]] = {}
    b_root = next(row for row in b_rows.get(UNITS, []) if row["parent_id"] is None)
    b_roles = {row["key"]: row["id"] for row in b_rows.get(ROLES, [])}
    b_people = {row["account_id"]: row["id"] for row in b_rows.get(PROFILES, [])} | {
        row["email"]: row["id"] for row in b_rows.get(PROFILES, [])
    }
    for shape in shapes:
        if shape.name in NOT_MERGED:
            continue
        coming: list[Row] = []
        mapped: dict[Any, Any] = {}
        for row in a_rows.get(shape.name, []):
            if shape.name == ROLES and row["key"] in b_roles:
                mapped[row["id"]] = b_roles[row["key"]]
                continue
            if shape.name == PROFILES and (row["account_id"] in b_people or row["email"] in b_people):
                mapped[row["id"]] = b_people.get(row["account_id"], b_people.get(row["email"]))
                result.matched_people += 1
                continue
            coming.append(dict(row))
        if (id_name := shape.id) is not None:
            start = max(
                [handed_out.get(shape.name, 0), *(int(row[id_name]) for row in b_rows.get(shape.name, []))]
            )
            for number, row in enumerate(sorted(coming, key=lambda row: row[id_name]), start=start + 1):
                mapped[row[id_name]] = number
        ids[shape.name] = mapped
        for row in coming:
            _follow(shape, row, ids, b_root["id"], result)
        # Clashes named by A's own ids, before the rows take theirs in B.
        _resolve_uniques(
            shape, uniques.get(shape.name, []), coming, b_rows.get(shape.name, []), a_slug, result
        )
        if shape.id is not None:
            for row in coming:
                row[shape.id] = mapped[row[shape.id]]
        if shape.path is not None:
            make_paths(shape, coming, above={b_root["id"]: b_root["path"]} if shape.name == UNITS else None)
        result.rows[shape.name] = coming
    return result


def _follow(shape: Shape, row: Row, ids: dict[str, dict[Any, Any]], b_root: Any, result: Combined) -> None:
    for ref in shape.references:
        value = row.get(ref.column)
        if value is None:
            if shape.name == UNITS and ref.column == "parent_id":
                row[ref.column] = b_root  # A's root hangs under B's
            continue
        if value in ids.get(ref.table, {}):
            row[ref.column] = ids[ref.table][value]
        elif ref.nullable:
            row[ref.column] = None
        else:
            result.refusals.append(
                f"{shape.name} #{row.get(shape.id or 'id')}: its {ref.column} names {ref.table} #{value}, "
                "which does not come along"
            )


def _resolve_uniques(
    shape: Shape, uniques: list[Unique], coming: list[Row], theirs: list[Row], a_slug: str, result: Combined
) -> None:
    for unique in uniques:
        taken = {tuple(row.get(column) for column in unique.columns) for row in theirs}
        for row in coming:
            value = tuple(row.get(column) for column in unique.columns)
            if any(part is None for part in value):
                continue  # empty values never clash
            if value in taken:
                _rename(shape, unique, row, taken, a_slug, result)
            taken.add(tuple(row.get(column) for column in unique.columns))


def _rename(
    shape: Shape, unique: Unique, row: Row, taken: set[tuple[Any, ...]], a_slug: str, result: Combined
) -> None:
    texts = [column for column in unique.columns if isinstance(row.get(column), str)]
    row_id = row.get(shape.id or "id")
    column = texts[-1] if texts else None
    if column is not None:
        room = unique.lengths.get(column)
        for number in range(1, 100):
            suffix = f" ({a_slug})" if number == 1 else f" ({a_slug} {number})"
            candidate = f"{row[column]}{suffix}"
            if room is not None and len(candidate) > room:
                break
            trial = tuple(candidate if name == column else row.get(name) for name in unique.columns)
            if trial not in taken:
                result.renamed.append(
                    f"{shape.name} #{row_id} of {a_slug}: its {column} {row[column]!r} is taken: it comes "
                    f"in as {candidate!r}"
                )
                row[column] = candidate
                return
    shown = ", ".join(f"{name} {row.get(name)!r}" for name in unique.columns)
    result.refusals.append(
        f"{shape.name} #{row_id} of {a_slug}: {shown} is taken, and cannot be renamed to fit"
    )


# Reading both tenants ----------------------------------------------------------------------------


def _read(
    connection: Connection, tenant_id: int | None
) -> tuple[list[Shape], dict[str, list[Unique]], dict[str, list[Row]], dict[str, int]]:
    tables = tenant_tables(connection)
    rows: dict[str, list[Row]] = {}
    for table in tables:
        sink = io.StringIO()
        summarise_table(connection, table, tenant_id=tenant_id, sink=sink)
        rows[table.name] = [json.loads(line) for line in sink.getvalue().splitlines()]
    uniques = {table.name: uniques_of(table) for table in tables}
    return [Shape.of(table) for table in tables], uniques, rows, last_ids(connection, tables)


async def _read_tenant(
    location: StoreLocation, tenant: Tenant
) -> tuple[list[Shape], dict[str, list[Unique]], dict[str, list[Row]], dict[str, int]]:
    reader = Database(location.url, schema=location.schema)
    try:
        return await reader.read_whole(_read, tenant.id if location.is_shared else None)
    finally:
        await reader.dispose()


async def _combine(
    settings: Settings, source: Tenant, target: Tenant
) -> tuple[list[Shape], Combined, dict[str, list[Row]]]:
    shapes, uniques, b_rows, handed_out = await _read_tenant(location_of(settings, target), target)
    a_shapes, _, a_rows, _ = await _read_tenant(location_of(settings, source), source)
    missing = sorted(
        {shape.name for shape in a_shapes if a_rows.get(shape.name)} - {shape.name for shape in shapes}
    )
    combined = combine(shapes, uniques, a_rows, b_rows, source.slug, handed_out)
    if missing:
        combined.refusals.insert(
            0,
            f"{target.slug} has no table for {', '.join(missing)}: enable the module they belong to there first",
        )
    return shapes, combined, b_rows


# The dry run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergePlan:
    source: Tenant
    target: Tenant
    #: Rows per table A brings.
    tables: dict[str, int]
    renamed: list[str]
    refusals: list[str]
    #: A's people: who are B's already, and who come in.
    matched_people: int
    new_people: int
    kept = A_IS_KEPT

    @property
    def rows_coming(self) -> int:
        return sum(self.tables.values())


def _check_may_merge(settings: Settings, source: Tenant, target: Tenant) -> None:
    if source.id == target.id:
        raise InvalidInput("A tenant is not merged into itself.", field="into")
    for tenant in (source, target):
        if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
            raise Conflict(f"{tenant.slug} is {tenant.status}; only active tenants are merged.")
    if source.template != target.template:
        raise Conflict(
            f"{source.slug} is a {source.template} tenant and {target.slug} a {target.template} one: "
            "only tenants of the same template are merged."
        )


async def merge_targets(session: AsyncSession, source: Tenant) -> list[Tenant]:
    """The tenants `source` may be merged into: the other active ones of its template."""
    found = await session.scalars(
        select(Tenant)
        .where(
            Tenant.template == source.template, Tenant.status == TenantStatus.ACTIVE, Tenant.id != source.id
        )
        .order_by(Tenant.slug)
    )
    return list(found)


async def target_named(session: AsyncSession, slug: str) -> Tenant:
    """The tenant a merge goes into, by its slug; a wrong one is a mistake in the `into` field."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug.strip()))
    if tenant is None:
        raise InvalidInput(f"There is no tenant {slug.strip()!r} to merge into.", field="into")
    return tenant


async def plan_merge(session: AsyncSession, settings: Settings, source: Tenant, target: Tenant) -> MergePlan:
    """What merging `source` into `target` would do, from both stores as they are now."""
    _check_may_merge(settings, source, target)
    _, combined, _ = await _combine(settings, source, target)
    return MergePlan(
        source,
        target,
        {name: len(rows) for name, rows in combined.rows.items() if rows},
        combined.renamed,
        combined.refusals,
        combined.matched_people,
        len(combined.rows.get(PROFILES, [])),
    )


@dataclass(frozen=True)
class RequestedMerge:
    plan: MergePlan
    job: Job


async def request_merge(
    session: AsyncSession,
    settings: Settings,
    source: Tenant,
    target: Tenant,
    *,
    requested_by: str | None = None,
) -> RequestedMerge:
    plan = await plan_merge(session, settings, source, target)
    if plan.refusals:
        raise Conflict(
            f"{source.slug} cannot be merged into {target.slug}: " + "; ".join(plan.refusals[:5]) + "."
        )
    backups = [
        queued_portable_backup(
            tenant, f"safety backup before merging {source.slug} into {target.slug}", requested_by
        )
        for tenant in (source, target)
    ]
    session.add_all(backups)
    await session.flush()
    job = await jobs.record_job(
        session,
        MERGE,
        tenant_id=target.id,
        payload={
            "backup_id": backups[1].id,
            "source_id": source.id,
            "source_backup_id": backups[0].id,
            "requested_by": requested_by,
        },
        steps=MERGE_STEP_NAMES,
    )
    for backup in backups:
        backup.job_id = job.id
    return RequestedMerge(plan, job)


# The job -----------------------------------------------------------------------------------------------


@dataclass
class MergeRun(StoreJob):
    """One merge: its tenant is B, the tenant merged into."""

    source_id: int = 0
    backup_id: int = 0
    source_backup_id: int = 0

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "source_id": int(payload["source_id"]),
            "backup_id": int(payload["backup_id"]),
            "source_backup_id": int(payload["source_backup_id"]),
        }

    async def source(self, session: AsyncSession) -> Tenant:
        return await session.get_one(Tenant, self.source_id)

    def backup_run(self, tenant_id: int, backup_id: int) -> BackupRun:
        return BackupRun(self.settings, self.landlord, self.job_id, tenant_id, backup_id)


async def lock(run: MergeRun, session: AsyncSession) -> str:
    said = await run.take_lock("merge", why=" with this tenant")

    async def waiting(holder: Job) -> None:
        await say_in_step(
            run.landlord, run.job_id, LOCK_STEP, f"waiting for {holder.kind} job #{holder.id} of the source"
        )

    await acquire_tenant_lock(run.landlord, run.source_id, run.job_id, "merge", waiting=waiting)
    source, target = await run.source(session), await run.tenant(session)
    _check_may_merge(run.settings, source, target)
    for backup_id in (run.backup_id, run.source_backup_id):
        (await session.get_one(Backup, backup_id)).status = JobStatus.RUNNING
    return f"{said}, and {source.slug} too"


async def maintenance_on(run: MergeRun, session: AsyncSession) -> str:
    source, target = await run.source(session), await run.tenant(session)
    source.status = target.status = TenantStatus.MAINTENANCE
    return f"{source.slug} and {target.slug} show a maintenance page, their APIs answer 503, until the merge is done"


async def writes_drained(run: MergeRun, session: AsyncSession) -> str:
    for tenant in (await run.source(session), await run.tenant(session)):
        await wait_for_writes_in_flight(location_of(run.settings, tenant), tenant.id)
    return "every write that began before the maintenance pages has ended; later ones are refused"


def _on(step: StepFunction[BackupRun], of_source: bool) -> StepFunction[MergeRun]:
    async def on_backup(run: MergeRun, session: AsyncSession) -> str:
        if of_source:
            return await step(run.backup_run(run.source_id, run.source_backup_id), session)
        return await step(run.backup_run(run.tenant_id, run.backup_id), session)

    return on_backup


async def plan(run: MergeRun, session: AsyncSession) -> str:
    """What B holds once A's rows are in, each table counted and hashed, kept in the job."""
    source, target = await run.source(session), await run.tenant(session)
    shapes, combined, b_rows = await _combine(run.settings, source, target)
    if combined.refusals:
        raise Conflict("; ".join(combined.refusals[:5]))
    expected = {
        shape.name: summarise_lines(
            shape.columns, [*b_rows.get(shape.name, []), *combined.rows.get(shape.name, [])]
        ).as_json()
        for shape in shapes
    }
    members = [
        {"account_id": row["account_id"], "email": row["email"]} for row in combined.rows.get(PROFILES, [])
    ]
    await run.remember(
        session, expected=expected, rows=combined.rows_coming, renamed=combined.renamed, members=members
    )
    return f"{combined.rows_coming:,} rows of {source.slug} to go into {target.slug}; {len(combined.renamed)} values renamed"


async def merge(run: MergeRun, session: AsyncSession) -> str:
    """A's rows into B's store in one transaction, which measures B against the plan before it commits."""
    source, target, payload = await run.source(session), await run.tenant(session), await run.payload(session)
    location = location_of(run.settings, target)
    measured = await measure_store(location, tenant_id=target.id if location.is_shared else None)
    done = all(
        (measured.tables[name].rows, measured.tables[name].sha256) == (summary["rows"], summary["sha256"])
        for name, summary in payload["expected"].items()
        if name in measured.tables
    )
    if done:
        return f"{target.slug} held {source.slug}'s rows already (a resumed merge)"
    shapes, combined, _ = await _combine(run.settings, source, target)
    await in_store_transaction(
        location, _insert, shapes, combined, target.id, payload["expected"], location.is_shared
    )
    return f"{combined.rows_coming:,} rows of {source.slug} put into {target.slug} in one transaction, checked before it committed"


def _insert(
    connection: Connection,
    shapes: list[Shape],
    combined: Combined,
    tenant_id: int,
    expected: dict[str, Any],
    shared: bool,
) -> None:
    tables = {table.name: table for table in tenant_tables(connection)}
    for shape in shapes:
        if rows := combined.rows.get(shape.name):
            if shape.id is not None:  # past these ids first: a neighbour in a shared store cannot take one
                continue_ids(
                    connection, [tables[shape.name]], after={shape.name: max(row[shape.id] for row in rows)}
                )
            load_table(connection, tables[shape.name], (json.dumps(row) for row in rows), tenant_id=tenant_id)
    continue_ids(connection, list(tables.values()))
    differ = [
        name
        for name, summary in expected.items()
        if name in tables
        and (
            (
                found := summarise_table(connection, tables[name], tenant_id=tenant_id if shared else None)
            ).rows,
            found.sha256,
        )
        != (summary["rows"], summary["sha256"])
    ]
    if differ:
        raise Conflict(
            f"The merged store would not hold what was planned, so nothing was put in: {', '.join(differ[:8])}"
        )


async def people(run: MergeRun, session: AsyncSession) -> str:
    source, target, payload = await run.source(session), await run.tenant(session), await run.payload(session)
    theirs = {
        m.user_id: m
        for m in await session.scalars(select(Membership).where(Membership.tenant_id == source.id))
    }
    ours = set(await session.scalars(select(Membership.user_id).where(Membership.tenant_id == target.id)))
    joined = 0
    for member in payload["members"]:
        membership = theirs.get(member["account_id"])
        if membership is not None and member["account_id"] not in ours:
            session.add(Membership(user_id=member["account_id"], tenant_id=target.id, role=membership.role))
            joined += 1
    return f"{joined} of {source.slug}'s people are members of {target.slug} now"


async def snapshot(run: MergeRun, session: AsyncSession) -> str:
    target = await run.tenant(session)
    _, detail = await record_snapshot(session, target, location_of(run.settings, target))
    return detail


async def maintenance_off(run: MergeRun, session: AsyncSession) -> str:
    source, target, payload = await run.source(session), await run.tenant(session), await run.payload(session)
    source.status = target.status = TenantStatus.ACTIVE
    await let_go(session, run.source_id, run.job_id)
    detail = {
        "from": source.slug,
        "rows": payload["rows"],
        "renamed": len(payload["renamed"]),
        "job": run.job_id,
    }
    await record(
        session, action="tenant.merged", actor=MERGES, tenant_id=target.id, target=target.slug, detail=detail
    )
    return f"{source.slug} and {target.slug} are active again; {source.slug} is as it was"


MERGE_STEPS: list[tuple[str, StepFunction[MergeRun]]] = [
    (LOCK_STEP, lock),
    ("maintenance on", maintenance_on),
    (WRITES_DRAINED, writes_drained),
    *(
        (f"source {name}", _on(step, True))
        for name, step in (
            ("dump", dump),
            ("checksum", checksum),
            ("manifest", record_manifest),
            ("verify", verify),
        )
    ),
    *(
        (f"target {name}", _on(step, False))
        for name, step in (
            ("dump", dump),
            ("checksum", checksum),
            ("manifest", record_manifest),
            ("verify", verify),
        )
    ),
    ("plan", plan),
    ("merge", merge),
    ("people", people),
    ("snapshot", snapshot),
    ("maintenance off", maintenance_off),
]
assert [name for name, _ in MERGE_STEPS] == MERGE_STEP_NAMES


async def _undo(run: MergeRun, _failure: Exception) -> None:
    """After a failure (not an interruption): both leave their maintenance and A's lock goes. Before
    the merge step's transaction committed B is as it was; after it, B holds A's rows, checked."""
    async with run.landlord.session() as session:
        for tenant in (await run.source(session), await run.tenant(session)):
            if tenant.status == TenantStatus.MAINTENANCE:
                tenant.status = TenantStatus.ACTIVE
    await release_tenant_lock(run.landlord, run.source_id, run.job_id)
    for tenant_id, backup_id in ((run.source_id, run.source_backup_id), (run.tenant_id, run.backup_id)):
        await record_backup_failure(
            run.backup_run(tenant_id, backup_id), "the merge it was taken for stopped first"
        )


@jobs.job_handler(MERGE, server_work=ServerWork.RESTORE)
async def merge_tenants(database: Database, job: Job, settings: Settings) -> None:
    await MergeRun.of(database, job, settings).run_holding_the_lock(MERGE_STEPS, on_failure=_undo)
