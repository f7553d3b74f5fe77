"""Job kinds for the tests. Imported by the test process, and by a `tenantry worker` subprocess
through TENANTRY_JOB_MODULES=tests.workers.jobkinds. Keep it light: services only, no test tools."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.jobs import job_handler
from services.models import Job, StoreEntry
from services.server_limits import ServerWork

MODULE = __name__
#: Counts its own runs in the landlord database (a row per job), so a second run would show.
RECORDS_A_RUN = "test.records_a_run"
#: Work a while as WORKS_A_WHILE does, as a backup or a migration of its tenant's store would: held
#: to the room its server has for that work (services.server_limits).
BACKS_UP_A_WHILE = "test.backs_up_a_while"
MIGRATES_A_WHILE = "test.migrates_a_while"
#: Raises the payload's "message".
FAILS = "test.fails"
#: Works for payload["seconds"], as a backup of a tenant's store would, then succeeds.
WORKS_A_WHILE = "test.works_a_while"
RUNS = "test-job-runs"
# The handlers take (database, job) and ignore anything passed after it (such as the settings).


@job_handler(RECORDS_A_RUN)
async def records_a_run(database: Database, job: Job, *_context: object) -> None:
    async with database.session() as session:
        entry = await session.get(StoreEntry, (RUNS, str(job.id)))
        runs = 1 if entry is None else json.loads(entry.value)["runs"] + 1
        value = json.dumps({"runs": runs, "note": job.payload.get("note")}).encode()
        if entry is None:
            session.add(StoreEntry(namespace=RUNS, key=str(job.id), value=value))
        else:
            entry.value = value


@job_handler(BACKS_UP_A_WHILE, server_work=ServerWork.BACKUP)
@job_handler(MIGRATES_A_WHILE, server_work=ServerWork.MIGRATE)
@job_handler(WORKS_A_WHILE)
async def works_a_while(database: Database, job: Job, *_context: object) -> None:
    await asyncio.sleep(job.payload["seconds"])


@job_handler(FAILS)
async def fails(database: Database, job: Job, *_context: object) -> None:
    raise RuntimeError(job.payload["message"])


async def runs_of(session: AsyncSession, job_id: int) -> dict[str, object]:
    """What records_a_run wrote for the job: {"runs": 0} when it never ran."""
    entry = await session.get(StoreEntry, (RUNS, str(job_id)))
    return {"runs": 0} if entry is None else json.loads(entry.value)
