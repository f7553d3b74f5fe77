"""Running a layer's migrations on a tenant store with Alembic's machinery.

Each layer is its own Alembic script directory (layers/<layer>/versions) with its own version
table in the store, so every layer of every tenant has its own recorded version. Revisions run
one at a time, each in its own transaction (transactional DDL on SQLite as on PostgreSQL), so a
crash leaves every revision applied whole or not at all, and the caller records each one. Asked
to (`atomic=True`), all the revisions of one call run in one transaction instead: a failure in
any of them leaves the layer exactly as it was (enabling or dropping a module)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.db import Database
from services.errors import DomainError
from services.layers.catalogue import Layer
from services.layers.ownership import TENANT_LAYER

UP, DOWN = "up", "down"
#: How asyncpg's errors begin, as SQLAlchemy's adapter passes them on.
_DRIVER_CLASS = re.compile(r"^<class '[\w.]+'>: ")
BASE = "base"


@dataclass(frozen=True)
class RevisionRun:
    """One revision of one layer, applied or reverted, as the landlord's history records it."""

    layer: str
    revision: str
    direction: str
    duration_ms: float
    error: str | None = None
    #: Where the layer is once the run has committed: the revision applied, or the one below the
    #: revision reverted (None: no revision left).
    reached: str | None = None

    @property
    def outcome(self) -> str:
        return "failed" if self.error else "succeeded"


Recorder = Callable[[RevisionRun], Awaitable[None]]


@dataclass(frozen=True)
class Timeouts:
    """How long one tenant's revision may wait for a lock, and run, before it fails (a rollout
    sets them, so that one busy tenant fails fast and the others go on), on PostgreSQL. On SQLite
    the wait for the store's write lock is its engine's busy timeout (StoreLocation.open)."""

    lock_ms: int
    statement_ms: int


class MigrationFailed(DomainError):
    def __init__(self, run: RevisionRun) -> None:
        verb = "apply" if run.direction == UP else "revert"
        super().__init__(f"Could not {verb} {run.layer} revision {run.revision}: {run.error}")
        self.run = run


def _script(path: Path) -> tuple[Config, ScriptDirectory]:
    """The layer's Alembic scripts, read again when its revision files change: a developer adds
    (or fixes) a tenant's custom revision and it is applied on request, without a restart."""
    return _read_script(path, _revision_files(path))


def _revision_files(path: Path) -> tuple[tuple[str, int, int], ...]:
    versions = path / "versions"
    if not versions.is_dir():
        return ()
    return tuple(
        sorted(
            (entry.name, stat.st_mtime_ns, stat.st_size)
            for entry in versions.iterdir()
            if entry.suffix == ".py"
            for stat in (entry.stat(),)
        )
    )


@lru_cache(maxsize=256)
def _read_script(path: Path, _files: tuple[tuple[str, int, int], ...]) -> tuple[Config, ScriptDirectory]:
    config = Config()
    config.set_main_option("script_location", str(path))
    return config, ScriptDirectory.from_config(config)


def revisions(layer: Layer) -> list[str]:
    """The layer's revisions from the first to the head (a layer's history is a straight line)."""
    _, script = _script(layer.path)
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def needs_quiet(layer: Layer, revision: str) -> bool:
    """Whether the revision says it needs its tenant quiet while it runs (`needs_quiet = True` in
    its file: a table rewrite, say); the tenant's portal then shows maintenance meanwhile."""
    module = _script(layer.path)[1].get_revision(revision).module
    return bool(getattr(module, "needs_quiet", False))


def head(layer: Layer) -> str | None:
    return _script(layer.path)[1].get_current_head()


def _current(connection: Connection, layer: Layer) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": layer.version_table}
    ).get_current_revision()


def _migrate(connection: Connection, layer: Layer, destination: str, direction: str) -> None:
    config, script = _script(layer.path)

    def steps(current: Any, _context: MigrationContext) -> Any:
        if direction == UP:
            return script._upgrade_revs(destination, current)  # what `alembic upgrade` itself runs
        return script._downgrade_revs(destination, current)

    connection.info[TENANT_LAYER] = True  # every table it creates gets its tenant_id (ownership.py)
    with EnvironmentContext(config, script, fn=steps, destination_rev=destination) as environment:
        environment.configure(
            connection=connection,
            version_table=layer.version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with environment.begin_transaction():
            environment.run_migrations()
    if direction == DOWN and destination == BASE:
        # A layer taken off entirely leaves no trace, not even its version table.
        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{layer.version_table}"')


# Alembic's `op` and `context` are module-wide proxies: one migration at a time per process.
_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


def _migration_lock() -> asyncio.Lock:
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


async def current_revision(store: Database, layer: Layer) -> str | None:
    async with store.engine.connect() as connection:
        return await connection.run_sync(_current, layer)


async def _sqlite_foreign_keys(connection: AsyncConnection, enabled: bool) -> None:
    """PRAGMA foreign_keys is ignored inside a transaction, so it goes to the driver directly."""
    raw = await connection.get_raw_connection()
    await raw.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")  # type: ignore[union-attr]


async def _run_revisions(
    store: Database,
    layer: Layer,
    moves: list[tuple[str, str]],
    direction: str,
    timeouts: Timeouts | None = None,
) -> list[RevisionRun]:
    """Run revisions, each given as (revision, destination), in one transaction: all of them or
    none. On SQLite, foreign keys are off while they run (so a table rebuilt by batch mode does not
    cascade-delete its children) and checked after each revision. Returns a run per revision
    reached; on failure the last carries the error and those before it say they were undone."""
    runs: list[RevisionRun] = []
    started = time.perf_counter()
    try:
        # Connected first (slow on a new server connection), then one migration at a time.
        async with store.engine.connect() as connection, _migration_lock():
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                await _sqlite_foreign_keys(connection, False)
            try:
                async with connection.begin():
                    if not sqlite and timeouts:
                        await connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeouts.lock_ms)}")
                        await connection.exec_driver_sql(
                            f"SET LOCAL statement_timeout = {int(timeouts.statement_ms)}"
                        )
                    if not sqlite:  # one migrator per database schema, across processes
                        await connection.exec_driver_sql(
                            "SELECT pg_advisory_xact_lock(hashtext('tenantry.migrate.' || current_schema()))"
                        )
                    for revision, destination in moves:
                        await connection.run_sync(_migrate, layer, destination, direction)
                        if sqlite and (
                            broken := (await connection.exec_driver_sql("PRAGMA foreign_key_check")).first()
                        ):
                            raise RuntimeError(f"the revision leaves a broken foreign key in {broken[0]}")
                        elapsed = (time.perf_counter() - started) * 1000
                        reached = destination if destination != BASE else None
                        runs.append(RevisionRun(layer.key, revision, direction, elapsed, reached=reached))
                        started = time.perf_counter()
            finally:
                if sqlite:
                    await _sqlite_foreign_keys(connection, True)
    except Exception as exc:
        error = _in_words(exc)
        failed = min(len(runs), len(moves) - 1)  # the revision running, or the last one at commit
        revision = moves[failed][0]
        undone = f"undone: revision {revision} failed in the same transaction"
        return [
            *(replace(run, error=undone) for run in runs[:failed]),
            RevisionRun(layer.key, revision, direction, (time.perf_counter() - started) * 1000, error),
        ]
    return runs


def _in_words(error: Exception) -> str:
    """A failure as the database said it, without the driver's wrapping (shown to landlord staff):
    "CHECK constraint failed: ck_events_capacity", not the exception's class path."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        said = _DRIVER_CLASS.sub("", str(error.orig))
    else:
        said = f"{type(error).__name__}: {error}"
    return said.strip().splitlines()[0]


async def _run_and_record(
    store: Database,
    layer: Layer,
    moves: list[tuple[str, str]],
    direction: str,
    record: Recorder,
    atomic: bool,
    timeouts: Timeouts | None,
) -> None:
    """Run the revisions (in one transaction when `atomic`, else one each), record every run, and
    raise MigrationFailed at the first failure."""
    batches = [moves] if atomic else [[move] for move in moves]
    for batch in batches:
        if not batch:
            continue
        runs = await _run_revisions(store, layer, batch, direction, timeouts)
        for run in runs:
            await record(run)
        if runs[-1].error:
            raise MigrationFailed(runs[-1])


async def upgrade_layer(
    store: Database,
    layer: Layer,
    record: Recorder,
    target: str | None = None,
    *,
    atomic: bool = False,
    timeouts: Timeouts | None = None,
) -> int:
    """Apply the layer's missing revisions up to `target` (the head by default); returns how many.
    `atomic`: all of them in one transaction, so a failure applies none."""
    ordered = revisions(layer)
    current = await current_revision(store, layer)
    start = ordered.index(current) + 1 if current else 0
    stop = ordered.index(target) + 1 if target else len(ordered)
    pending = ordered[start:stop]
    moves = [(revision, revision) for revision in pending]
    await _run_and_record(store, layer, moves, UP, record, atomic, timeouts)
    return len(pending)


async def downgrade_layer(
    store: Database,
    layer: Layer,
    record: Recorder,
    target: str = BASE,
    *,
    atomic: bool = False,
    timeouts: Timeouts | None = None,
) -> int:
    """Revert the layer's revisions down to `target` (all of them by default); returns how many.
    `atomic`: all of them in one transaction, so a failure reverts none."""
    ordered = revisions(layer)
    current = await current_revision(store, layer)
    if current is None:
        return 0
    stop = ordered.index(target) + 1 if target != BASE else 0
    moves = [
        (ordered[index], ordered[index - 1] if index > 0 else BASE)
        for index in range(ordered.index(current), stop - 1, -1)
    ]
    await _run_and_record(store, layer, moves, DOWN, record, atomic, timeouts)
    return len(moves)
