"""A store built from nothing may be sent the SQL its revisions sent on the same schema before
(services.layers.replay): for any template and modules, in every kind of store, it comes out
exactly as Alembic builds it; a revision that changed, that failed, or whose SQL names its store
is run, not replayed."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Table, event, text

from services.db import Database
from services.layers.catalogue import Layer, LayerKind
from services.layers.migrator import MigrationFailed, upgrade_layer
from services.layers.replay import StoreWithoutRows
from services.layers.snapshot import VERSION_TABLE_PREFIX, take_snapshot
from tests.services.layers.stores import Runs, Store, catalogue
from tests.services.provisioning.test_golden_property import recipes
from tests.support import fresh_postgres_database, requires_postgres

#: Makes a new empty store each time it is called.
NewStore = Callable[[], Store]


SQLITE = "sqlite"
POSTGRES_KINDS = [
    pytest.param("postgres-database", marks=requires_postgres),
    pytest.param("postgres-schema", marks=requires_postgres),
]


@pytest.fixture(scope="module", params=[SQLITE, *POSTGRES_KINDS])
def new_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NewStore]:
    """Empty stores of one kind: SQLite files, PostgreSQL databases, or schemas of one database;
    the databases dropped after the module."""
    if request.param == SQLITE:
        folder = tmp_path_factory.mktemp("stores")
        yield lambda: Store(f"sqlite+aiosqlite:///{folder / secrets.token_hex(4)}.db")
        return
    with ExitStack() as databases:
        if request.param == "postgres-database":
            yield lambda: Store(databases.enter_context(fresh_postgres_database()))
            return
        url = databases.enter_context(fresh_postgres_database())
        yield lambda: Store.new_schema(url)


class Built:
    """A store built by `upgrade_layer`: its snapshot's hash, and how many of the layers' tables
    Alembic made (their version tables are the migrator's, made either way)."""

    def __init__(self, where: Store, layers: list[Layer], *, no_rows_yet: bool) -> None:
        self.tables_made = 0

        def made(table: Table, *_: Any, **__: Any) -> None:
            self.tables_made += not table.name.startswith(VERSION_TABLE_PREFIX)

        async def build(store: Database) -> str:
            # One for the whole build, as its builders keep it: the schema is read once.
            building = StoreWithoutRows(store) if no_rows_yet else None
            for layer in layers:
                await upgrade_layer(store, layer, Runs(), without_rows=building)
            return (await take_snapshot(store))[1]

        event.listen(Table, "before_create", made)
        try:
            self.sha256 = where.run(build)
        finally:
            event.remove(Table, "before_create", made)


def _built_both_ways(new_store: NewStore, recipe: tuple[str, list[str], list[str]]) -> None:
    template, modules, _ = recipe
    found = catalogue()
    layers = found.layers_for(template, found.resolve_modules(template, modules))

    by_alembic = Built(new_store(), layers, no_rows_yet=False)
    first = Built(new_store(), layers, no_rows_yet=True)  # recorded now, or by an earlier example
    replayed = Built(new_store(), layers, no_rows_yet=True)

    assert by_alembic.tables_made > 0
    assert replayed.tables_made == 0, "every revision was sent as recorded SQL"
    assert first.sha256 == by_alembic.sha256, f"{template} + {modules}"
    assert replayed.sha256 == by_alembic.sha256, f"{template} + {modules}"


@pytest.mark.parametrize("new_store", [SQLITE], indirect=True)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes())
def test_a_sqlite_store_built_from_recorded_sql_is_the_one_its_migrations_build(
    new_store: NewStore, recipe: tuple[str, list[str], list[str]]
) -> None:
    _built_both_ways(new_store, recipe)


@pytest.mark.parametrize("new_store", POSTGRES_KINDS, indirect=True)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes())
def test_a_postgresql_store_built_from_recorded_sql_is_the_one_its_migrations_build(
    new_store: NewStore, recipe: tuple[str, list[str], list[str]]
) -> None:
    _built_both_ways(new_store, recipe)


# --- Revisions that are run, not replayed ---------------------------------------------------------

_REVISION = """
    from pathlib import Path

    import sqlalchemy as sa
    from alembic import op

    revision = "probe_0001"
    down_revision = None
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        with Path(__file__).with_suffix(".runs").open("a") as runs:
            runs.write("ran\\n")
        {body}


    def downgrade() -> None:
        op.drop_table("probes")
"""


def _probe_layer(folder: Path, body: str) -> Layer:
    """A layer of one revision, `body` its upgrade after it notes that it ran."""
    versions = folder / "probe" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / "probe_0001.py").write_text(textwrap.dedent(_REVISION).format(body=body))
    return Layer(LayerKind.CUSTOM, f"probe-{secrets.token_hex(3)}", folder / "probe")


def _runs(layer: Layer) -> int:
    noted = layer.path / "versions" / "probe_0001.runs"
    return len(noted.read_text().splitlines()) if noted.exists() else 0


def _columns(where: Store) -> list[str]:
    async def read(store: Database) -> list[str]:
        async with store.engine.connect() as connection:
            return list((await connection.execute(text("SELECT * FROM probes"))).keys())

    return where.run(read)


def _build(where: Store, layer: Layer) -> None:
    async def build(store: Database) -> None:
        await upgrade_layer(store, layer, Runs(), without_rows=StoreWithoutRows(store))

    where.run(build)


CREATE_PROBES = 'op.create_table("probes", sa.Column("id", sa.Integer, primary_key=True){more})'


def test_an_edited_revision_is_run_again_not_replayed_as_it_was(new_store: NewStore, tmp_path: Path) -> None:
    layer = _probe_layer(tmp_path, CREATE_PROBES.format(more=""))
    _build(new_store(), layer)
    _build(new_store(), layer)
    assert _runs(layer) == 1, "the second store was sent what the first one's revision sent"

    _probe_layer(tmp_path, CREATE_PROBES.format(more=', sa.Column("colour", sa.String(20))'))
    edited = new_store()
    _build(edited, layer)

    assert _runs(layer) == 2
    assert _columns(edited) == ["id", "colour", "tenant_id"]


def test_a_revision_that_failed_is_run_again_not_replayed(new_store: NewStore, tmp_path: Path) -> None:
    layer = _probe_layer(tmp_path, 'op.execute("SELECT 1")\n    raise RuntimeError("the probe fails")')
    for _ in range(2):
        with pytest.raises(MigrationFailed, match="the probe fails"):
            _build(new_store(), layer)
    assert _runs(layer) == 2


def test_sql_that_names_its_store_is_not_replayed_into_another(new_store: NewStore, tmp_path: Path) -> None:
    """A revision may write its store's own name (a comment, a grant): right for that store only."""
    body = (
        "name = op.get_bind().exec_driver_sql(\"SELECT coalesce(nullif(current_schema(), 'public'), "
        "current_database())\").scalar() if op.get_bind().dialect.name == 'postgresql' "
        "else op.get_bind().engine.url.database\n    "
        + CREATE_PROBES.format(more=', sa.Column("note", sa.String(300), server_default=name)')
    )
    layer = _probe_layer(tmp_path, body)
    _build(new_store(), layer)
    _build(new_store(), layer)
    assert _runs(layer) == 2
