"""Revisions replayed from the SQL they sent.

Building a store from nothing applies the same revisions to the same schema, store after store:
every tenant of a template, every warm pool store, every restore's new store. Running a revision
through Alembic costs each time what the SQL it sends does not: its operations built, its tables
made and completed (services.layers.ownership), its DDL compiled; about a quarter of a SQLite
tenant's provisioning, and on PostgreSQL two round trips per statement. So the first run of a
revision on a schema records the statements it sends, and a later run on a store whose schema is
the same sends them again instead: on PostgreSQL, each stretch of statements without parameters
in one round trip.

Only where the store holds no rows yet (its caller says so): a migration may read rows and send
SQL that depends on them, and in such stores the rows are the same everywhere (none). The key is
everything the SQL depends on otherwise: the store's schema (its catalog, whatever the order its
layers came in, the server's version, and where each layer is), the revision file as it is now
(an edited revision is another key), the direction, and the role a shared store grants its rows
to. The schema is read once per caller's run of revisions: after that, each revision's key names
the schema it leaves. A recording that names the store itself (its database or schema) is not
kept: it would be right for that store alone."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.util import await_

from services.db import Database
from services.layers.catalog import catalog_key
from services.layers.ownership import SHARED_STORE_ROLE
from services.layers.snapshot import VERSION_TABLE_PREFIX, version_rows
from services.recently_used import LeastRecentlyUsed

#: Recordings kept per process: every revision of every layer, from a few starting schemas each.
RECORDINGS_KEPT = 512


@dataclass(frozen=True)
class _Sent:
    """One statement as the driver was given it: its parameters, for one row or (`many`) for each
    of several."""

    statement: str
    parameters: Any
    many: bool


_RECORDINGS: LeastRecentlyUsed[str, tuple[_Sent, ...]] = LeastRecentlyUsed(RECORDINGS_KEPT)


def forget_recordings() -> None:
    """Forget every recording: the next run of each revision goes through Alembic again (the
    provisioning benchmark measures building stores that way, as its baseline)."""
    _RECORDINGS.clear()


class StoreWithoutRows:
    """A store being built, which holds no rows: each revision run on it is sent as the SQL it
    sent before on the same schema, when it has run on one. Its schema is read before the first
    revision and after anything else changed it; in between, each revision's key names the schema
    it leaves. One per store and builder, used for every layer it applies."""

    def __init__(self, store: Database) -> None:
        url = make_url(store.url)
        #: What the store is called: SQL naming it is right for it alone.
        self.own_names = {name for name in (url.database, store.schema) if name}
        #: The store's schema as a key, once read (None: read it before the next revision).
        self._schema: str | None = None

    def run_or_replay(self, connection: Connection, revision: list[Any], run: Callable[[], None]) -> None:
        """Send the SQL recorded for `revision` (what names it: layer, revision, direction, its
        files) on this schema, or `run` it and record what it sends (kept once it has run without
        an error)."""
        schema, self._schema = self._schema or _schema_of(connection), None
        if schema is None:
            run()  # a dialect without a catalog query
            return
        said = [schema, revision, connection.info.get(SHARED_STORE_ROLE)]
        key = hashlib.sha256(json.dumps(said).encode()).hexdigest()
        recorded = _RECORDINGS.get(key)
        if recorded is not None:
            _send(connection, recorded)
        else:
            with _recording(connection) as sent:
                run()
            if not any(name in each.statement for each in sent for name in self.own_names):
                _RECORDINGS.put(key, tuple(sent))
        self._schema = key  # the schema the revision leaves, whoever ran it

    def lose_track(self) -> None:
        """Something else changed the store: read its schema again before the next revision."""
        self._schema = None


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}


def _schema_of(connection: Connection) -> str | None:
    """The store's schema as a key: its catalog and where each layer is. None for a dialect
    without a catalog query."""
    catalog = catalog_key(connection)
    if catalog is None:
        return None
    versions = [
        name
        for name in connection.exec_driver_sql(_TABLES[connection.dialect.name]).scalars()
        if name.startswith(VERSION_TABLE_PREFIX)
    ]
    positions = sorted(tuple(row) for row in connection.execute(version_rows(versions))) if versions else []
    return hashlib.sha256(json.dumps([catalog, positions]).encode()).hexdigest()


@contextmanager
def _recording(connection: Connection) -> Iterator[list[_Sent]]:
    sent: list[_Sent] = []

    def look(
        _connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        sent.append(_Sent(statement, copy.deepcopy(parameters), many))

    event.listen(connection, "before_cursor_execute", look)
    try:
        yield sent
    finally:
        event.remove(connection, "before_cursor_execute", look)


def _send(connection: Connection, recorded: tuple[_Sent, ...]) -> None:
    script: list[str] = []
    for each in recorded:
        if connection.dialect.name == "postgresql" and not each.parameters:
            script.append(each.statement)
            continue
        _send_script(connection, script)
        # One row's parameters given as a list would read as many rows of one value each.
        single = isinstance(each.parameters, list) and not each.many
        sent = connection.exec_driver_sql(
            each.statement, tuple(each.parameters) if single else each.parameters
        )
        sent.close()  # a read's rows were for the revision's own decisions, taken when it was recorded
    _send_script(connection, script)


def _send_script(connection: Connection, script: list[str]) -> None:
    """Statements without parameters, in one round trip (PostgreSQL's simple query protocol runs
    several statements in the transaction already open)."""
    if script:
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection in a transaction has its driver's"
        await_(driver.execute(";\n".join(script)))
        script.clear()
