"""Writing to a tenant while it moves: a tenant token writes rows through the tenant data API, one
after another, while a landlord token moves the tenant into the shared store and the app's own
worker runs the move. Writes are answered 201 while the rows are copied; only the final catch-up
refuses them. Every write is answered 201, and its row is then in the store the tenant ends in
exactly once, or 503 with Retry-After, and its row is nowhere; at least one is refused, so the
freeze is seen, and while it lasts the tenant's portal shows the maintenance notice. The writer
follows the move's job through the API (a gate holds the move at its catch-up until the writer
has been refused), never a clock.

And a write already let in when the move begins, held inside its transaction, holds the move at
its `capture on` step (nothing is copied meanwhile); let go, it is answered 201 and its row is in
the moved store: never answered 201 and lost."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from threading import Event
from typing import Any

import pytest
from httpx import Response
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from services.models import IsolationMode, JobStatus, StepStatus, Tenant, TenantStatus
from services.moves.requests import CAPTURE_ON, CATCH_UP
from services.settings import Settings
from services.tenant_data.records import record_schema
from tests.services.running import wait_for
from tests.support import Credentials, before_each_statement, sign_in
from tests.web.portal import add_token, assert_no_trace
from tests.web.tenant_world import (
    add_admin,
    in_tenant,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_api import bearer
from tests.web.test_provisioning_pages import text_of
from tests.workers.gate import reached
from tests.workers.move_gate import hold_move_at
from tests.workers.support import steps_of, tenant

SLUG = "heron-club"
TABLE = "groups"
ROWS = f"/api/v1/tenant/data/{TABLE}"
MOVES = f"/api/v1/tenants/{SLUG}/moves"
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits lifted: the writer writes as fast as answers come, faster than a plan allows,
    and a 429 is not what is looked at here."""
    return replace(settings, rate_limits=False)


@dataclass(frozen=True)
class Heron:
    """heron-club's admin, a token of theirs and a landlord's."""

    admin: Credentials
    tenant_token: str
    landlord_token: str


def heron_in(settings: Settings, superadmin: Credentials, isolation: str) -> Heron:
    provision(settings, SLUG, isolation=isolation)
    admin = add_admin(settings, SLUG, "admin@heron.example")
    return Heron(admin, add_token(settings, admin.email, SLUG), add_token(settings, superadmin.email))


@pytest.fixture
def heron(settings: Settings, superadmin: Credentials) -> Heron:
    return heron_in(settings, superadmin, IsolationMode.DATABASE)


@pytest.fixture
def shared_heron(settings: Settings, superadmin: Credentials) -> Heron:
    return heron_in(settings, superadmin, IsolationMode.SHARED)


@dataclass
class Writer:
    """Writes one row after another through the tenant data API, each named after its number, and
    keeps every answer."""

    client: TestClient[Any]
    token: str
    answers: dict[str, int] = field(default_factory=dict)

    def write(self) -> Response:
        name = f"Write {len(self.answers) + 1}"
        answer = self.client.post(ROWS, json={"name": name}, headers=bearer(self.token))
        assert answer.status_code in (201, 503), answer.text
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) > 0
        self.answers[name] = answer.status_code
        return answer

    def refused(self) -> bool:
        return self.write().status_code == 503


def names_in_store(settings: Settings) -> Counter[str]:
    """The names of the tenant's rows of TABLE in the store the landlord names, counted."""

    async def work(_landlord: AsyncSession, data: Any, found: Tenant) -> Counter[str]:
        model = (await record_schema(data, f"names-{found.id}-{TABLE}")).table(TABLE).model
        return Counter(row.name for row in await data.scalars(select(model)))

    return in_tenant(settings, SLUG, work)


def job_status(client: TestClient[Any], token: str, location: str) -> str:
    response = client.get(location, headers=bearer(token))
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def move(client: TestClient[Any], heron: Heron, isolation: str) -> str:
    """Ask for the move as a landlord token does; where its job is followed."""
    response = client.post(MOVES, json={"isolation": isolation}, headers=bearer(heron.landlord_token))
    assert response.status_code == 202, response.text
    location: str = response.headers["location"]
    return location


def assert_every_answer_kept(settings: Settings, answers: dict[str, int], before: Counter[str]) -> None:
    """Nothing lost, nothing twice: each write answered 201 is in the tenant's store once, each
    refused one is not there, and nothing else came."""
    found = names_in_store(settings) - before
    assert {name: found[name] for name in answers} == {
        name: 1 if status == 201 else 0 for name, status in answers.items()
    }
    assert sum(found.values()) == list(answers.values()).count(201)


def test_writes_during_a_move_land_in_the_moved_store_once_or_are_refused_with_503(
    client: TestClient[Any], settings: Settings, heron: Heron, tmp_path: Path
) -> None:
    before = names_in_store(settings)
    writer = Writer(client, heron.tenant_token)
    assert writer.write().status_code == 201
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_move_at(CATCH_UP, gate)
    try:
        job = move(client, heron, IsolationMode.SHARED)
        # Written while the move copies, until one is refused: every write before it has ended then.
        wait_for(writer.refused, 60, what="a write refused for the move", interval=0)
        during_the_copy = Counter(writer.answers.values())
        assert during_the_copy[201] >= 2, f"the tenant kept serving while it was copied: {during_the_copy}"
        wait_for(reached(gate).exists, 60, what="the move to reach its gate")
        assert job_status(client, heron.landlord_token, job) == JobStatus.RUNNING
        assert writer.refused(), "still refused while the move holds"

        sign_in(client, heron.admin)
        page = client.get(f"/t/{SLUG}/")
        assert page.status_code == 503
        assert page.headers["retry-after"]
        notice = text_of(page.text)
        assert "Heron Club" in notice and "nothing can be read or changed until then" in notice, notice
        assert_no_trace(page.text)
    finally:
        gate.unlink()
        remove_gate()

    # The writes go on through the catch-up and the swap, until the move is done and one lands after it.
    def written_after_the_move() -> bool:
        done = job_status(client, heron.landlord_token, job) in FINISHED
        return writer.write().status_code == 201 and done

    wait_for(written_after_the_move, 120, what="the move to end and a write to land after it", interval=0)

    assert job_status(client, heron.landlord_token, job) == JobStatus.SUCCEEDED
    moved = tenant(settings, SLUG)
    assert (moved.status, moved.isolation) == (TenantStatus.ACTIVE, IsolationMode.SHARED)
    statuses = Counter(writer.answers.values())
    assert statuses[503] >= 2 and statuses[201] >= 2, statuses
    assert_every_answer_kept(settings, writer.answers, before)
    assert client.get(f"/t/{SLUG}/").status_code == 200


@contextmanager
def held_inside_its_transaction(table: str) -> Iterator[tuple[Event, Event]]:
    """While open, the first INSERT into `table` waits, inside its transaction, until told to go
    (`let_go`), having said it is there (`inside`). It waits on its request's event loop, which
    serves other requests meanwhile."""
    inside, let_go = Event(), Event()
    insert = re.compile(rf"^\s*INSERT INTO {table}\b", re.IGNORECASE)

    async def until_let_go() -> None:
        await asyncio.to_thread(let_go.wait, 120)

    def look(statement: str) -> None:
        if not inside.is_set() and insert.match(statement):
            inside.set()
            await_only(until_let_go())  # in the request's greenlet: its loop runs on

    with before_each_statement(look):
        yield inside, let_go


def test_a_write_let_in_before_the_move_froze_the_tenant_is_in_the_moved_store_or_refused(
    client: TestClient[Any], settings: Settings, shared_heron: Heron
) -> None:
    """Out of the shared store into a database: the move's change capture begins with the tenant's
    write barrier (on SQLite, the store's write lock, which the held write keeps), so the held
    write is either noted or in the copy."""
    heron = shared_heron
    before = names_in_store(settings)
    writer = Writer(client, heron.tenant_token)

    with held_inside_its_transaction(TABLE) as (inside, let_go), ThreadPoolExecutor(1) as other:
        in_flight = other.submit(writer.write)
        try:
            wait_for(inside.is_set, 60, what="the write to be inside its transaction")
            job = move(client, heron, IsolationMode.DATABASE)
            job_id = int(job.rsplit("/", 1)[1])

            def capturing() -> bool:
                """The move, starting its capture, waits for the writes let in before: this one."""
                steps = {step.name: step for step in steps_of(settings, job_id)}
                return steps[CAPTURE_ON].status == StepStatus.RUNNING

            wait_for(capturing, 60, what="the move to wait for the write in flight")
            dump = next(step for step in steps_of(settings, job_id) if step.name == "dump")
            assert dump.status == StepStatus.PENDING, "nothing is copied while the write is in flight"
        finally:
            let_go.set()
        assert in_flight.result(60).status_code == 201, "let in before the freeze, it is kept"

    wait_for(lambda: job_status(client, heron.landlord_token, job) in FINISHED, 120, what="the move to end")
    assert job_status(client, heron.landlord_token, job) == JobStatus.SUCCEEDED
    assert tenant(settings, SLUG).isolation == IsolationMode.DATABASE
    assert_every_answer_kept(settings, writer.answers, before)
