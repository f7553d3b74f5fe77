"""A gate in a rollout's lane, for tests: the lane working on one tenant waits while a file exists,
either before its migrate step starts (`migrate`) or once a revision has committed in the store and
before the landlord records it (`record`), so a test can SIGKILL the worker exactly there.

Imported by a `tenantry worker` or `tenantry serve` subprocess through
TENANTRY_JOB_MODULES=tests.workers.rollout_gate, with TENANTRY_TEST_ROLLOUT_GATE=<file>,
TENANTRY_TEST_ROLLOUT_GATE_AT=<migrate|record> and TENANTRY_TEST_ROLLOUT_GATE_TENANT=<tenant id>.
Keep it light: services only, no test tools (the gate itself: tests/workers/gate.py)."""

from __future__ import annotations

import os
from pathlib import Path

from services.layers.migrator import RevisionRun
from services.rollouts import runs
from tests.workers.gate import wait_at

GATE_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE"
AT_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE_AT"
TENANT_VARIABLE = "TENANTRY_TEST_ROLLOUT_GATE_TENANT"


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

        async def gated_migrate(run: runs.RolloutRun) -> runs.Ended:
            if run.tenant_id == tenant_id:
                await wait_at(path)
            return await migrate(run)

        runs.migrate = gated_migrate
    elif at == "record":
        record = runs.RolloutRun.record

        async def gated_record(self: runs.RolloutRun, run: RevisionRun) -> None:
            if self.tenant_id == tenant_id and run.error is None:
                await wait_at(path)  # the revision has committed in the store; the landlord waits
            await record(self, run)

        runs.RolloutRun.record = gated_record  # type: ignore[method-assign]


_install()
