"""A gate in a rollout's tenant job, for tests: the job of one tenant waits while a file exists,
either before its migrate step starts (`migrate`) or once a revision has committed in the store and
before the landlord records it (`record`), so a test can SIGKILL the worker exactly there.

Imported by a `tenantry worker` or `tenantry serve` subprocess through
TENANTRY_JOB_MODULES=tests.workers.rollout_gate, with TENANTRY_TEST_ROLLOUT_GATE=<file>,
TENANTRY_TEST_ROLLOUT_GATE_AT=<migrate|record> and TENANTRY_TEST_ROLLOUT_GATE_TENANT=<tenant id>.
Keep it light: services only, no test tools."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.migrator import RevisionRun
from services.rollouts import runs

GATE_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE"
AT_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE_AT"
TENANT_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE_TENANT"
PATIENCE_SECONDS = 120.0


def reached(gate: Path) -> Path:
    """Touched when a worker arrives at the gate."""
    return Path(f"{gate}.reached")


async def _wait_at(gate: Path) -> None:
    await asyncio.to_thread(reached(gate).touch)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while await asyncio.to_thread(gate.exists):
        if time.monotonic() > deadline:
            raise RuntimeError("the gate was never opened")
        await asyncio.sleep(0.05)


def _install() -> None:
    gate, at, tenant = (
        os.environ.get(GATE_VARIABLE),
        os.environ.get(AT_VARIABLE),
        os.environ.get(TENANT_VARIABLE),
    )
    if not gate or not tenant:
        return
    path, tenant_id = Path(gate), int(tenant)
    if at == "migrate":
        migrate = runs.migrate

        async def gated_migrate(run: runs.RolloutRun, session: AsyncSession) -> str:
            if run.tenant_id == tenant_id:
                await _wait_at(path)
            return await migrate(run, session)

        runs.migrate = gated_migrate
    elif at == "record":
        record = runs.RolloutRun.record

        async def gated_record(self: runs.RolloutRun, run: RevisionRun) -> None:
            if self.tenant_id == tenant_id and run.error is None:
                await _wait_at(path)  # the revision has committed in the store; the landlord waits
            await record(self, run)

        runs.RolloutRun.record = gated_record  # type: ignore[method-assign, assignment]


_install()
