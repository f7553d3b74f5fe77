"""Two people writing one row at once: a row someone else deletes while a change (or another
delete) of it is under way is "not found" (404), through the API and the portal alike; never a
500, and nothing on the audit trail for a write that did not happen. On SQLite, where a writing
request holds the store's write lock from its start, the delete cannot come in between: the
change goes through whole and the other writer waits."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from httpx import Response
from litestar.testing import TestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from services.models import Tenant
from services.settings import Settings
from services.tenancy.stores import SQLITE, StoreLocation, location_of
from tests.support import Credentials, before_each_statement, csrf_token, run_db, signed_in
from tests.web.portal import add_token, portal
from tests.web.tenant_world import (
    add_admin,
    add_rows,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_tenant_data import audit_actions, count_rows

SLUG = "heron-club"


def store_of(settings: Settings, slug: str) -> StoreLocation:
    async def work(session: AsyncSession) -> StoreLocation:
        return location_of(settings, (await session.scalars(select(Tenant).where(Tenant.slug == slug))).one())

    return run_db(settings, work)


@dataclass
class Meanwhile:
    """What happened while a request was about to write: the statement it was about to run, and
    whether another connection could delete the row then."""

    statement: str | None = None
    deleted: bool = False


@contextmanager
def deleted_meanwhile(store: StoreLocation, table: str, row_id: int) -> Iterator[Meanwhile]:
    """While open, the moment a request is about to UPDATE or DELETE row `row_id` of `table`,
    after it has read the row, another connection deletes that row and commits, as a second
    request would. On SQLite it cannot: the request has held the store's write lock since its
    transaction began, and the other connection, not waiting, is refused."""
    meanwhile = Meanwhile()
    write = re.compile(rf"^\s*(UPDATE|DELETE FROM) {table}\b", re.IGNORECASE)

    async def delete_it() -> None:
        other = store.open()
        try:
            async with other.engine.begin() as connection:
                await connection.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})
        finally:
            await other.dispose()

    def delete_from_sqlite() -> None:
        other = sqlite3.connect(store.name, timeout=0, isolation_level=None)
        try:
            other.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        except sqlite3.OperationalError as refused:
            assert "locked" in str(refused)
            return
        finally:
            other.close()
        meanwhile.deleted = True

    def before_write(statement: str) -> None:
        if meanwhile.statement is None and write.match(statement):
            meanwhile.statement = statement
            if store.backend == SQLITE:
                delete_from_sqlite()
                return
            # Inside the request's own greenlet: the other connection's delete runs to its commit
            # on the request's event loop before the request's statement goes out.
            await_only(delete_it())
            meanwhile.deleted = True

    with before_each_statement(before_write):
        yield meanwhile


def test_a_row_deleted_under_a_change_or_a_delete_is_not_found(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@heron.example")
    headers = {"Authorization": f"Bearer {add_token(settings, admin.email, SLUG)}"}
    store = store_of(settings, SLUG)
    api = "/api/v1/tenant/data/groups"
    page = f"/t/{SLUG}/data/groups"
    writes: dict[str, Callable[[TestClient[Any], int], Response]] = {
        "PATCH": lambda client, row: client.patch(
            f"{api}/{row}", json={"name": f"Ours {row}"}, headers=headers
        ),
        "PUT": lambda client, row: client.put(f"{api}/{row}", json={"name": f"Ours {row}"}, headers=headers),
        "DELETE": lambda client, row: client.delete(f"{api}/{row}", headers=headers),
        "portal edit": lambda client, row: client.post(
            f"{page}/{row}/edit", data={"name": f"Ours {row}", "_csrf_token": csrf_token(client)}
        ),
        "portal delete": lambda client, row: client.post(
            f"{page}/{row}/delete", data={"_csrf_token": csrf_token(client)}
        ),
    }
    rows = add_rows(settings, SLUG, "groups", [{"name": f"Heron {name}"} for name in writes])

    with portal(settings) as client:
        signed_in(client, admin)
        for (name, write), row in zip(writes.items(), rows, strict=True):
            with deleted_meanwhile(store, "groups", row) as meanwhile:
                answer = write(client, row)
            assert meanwhile.statement, f"{name}: the request never wrote the row"
            if store.backend == SQLITE:
                # One writer at a time: the delete could not come between the read and the write.
                assert not meanwhile.deleted, f"{name}: another connection wrote during the request"
                assert answer.status_code < 400, f"{name}: {answer.status_code} {answer.text}"
                continue
            assert meanwhile.deleted, name
            assert answer.status_code == 404, f"{name}: {answer.status_code} {answer.text}"
            assert "no such record" in answer.text, name

    changed = [action for action, _ in audit_actions(settings, "record.")]
    if store.backend == SQLITE:
        assert count_rows(settings, SLUG, "groups") == 3, "the three changed rows stay, the two deleted go"
        assert sorted(changed) == ["record.delete"] * 2 + ["record.update"] * 3
    else:
        assert count_rows(settings, SLUG, "groups") == 0
        assert changed == [], "a write that did not happen is not on the trail"
