"""A gate in a restore job, for tests: one step of services.backups.restores waits while a file
exists, before its work (`<step>`) or after it, before the step is recorded (`<step>:after`), so a
test can look at the tenant there, or SIGKILL the worker there.

Imported by a `tenantry worker` or `tenantry serve` subprocess through
TENANTRY_JOB_MODULES=tests.workers.restore_gate, with TENANTRY_TEST_RESTORE_GATE=<file> and
TENANTRY_TEST_RESTORE_GATE_AT=<step>; in the test process, `hold_restore_at` puts one in place.
Keep it light: services only, no test tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import restores
from services.jobs import StepFunction
from tests.workers.gate import wait_at

GATE_VARIABLE = "TENANTRY_TEST_RESTORE_GATE"
STEP_VARIABLE = "TENANTRY_TEST_RESTORE_GATE_AT"


def _gated(step: StepFunction[Any], gate: Path, after: bool) -> StepFunction[Any]:
    async def gated(run: Any, session: AsyncSession) -> str:
        if not after:
            await wait_at(gate)
        detail = await step(run, session)
        if after:
            await wait_at(gate)
        return detail

    return gated


def hold_restore_at(
    where: str, gate: Path, steps: list[tuple[str, StepFunction[Any]]] = restores.RESTORE_STEPS
) -> Callable[[], None]:
    """Put a gate at `where` ("restore", "swap", "restore:after", …) of a restore job (or of the
    `steps` of another, a copy's); returns what takes it away."""
    name, _, when = where.partition(":")
    index = next(position for position, (step, _) in enumerate(steps) if step == name)
    original = steps[index]
    steps[index] = (name, _gated(original[1], gate, when == "after"))

    def remove() -> None:
        steps[index] = original

    return remove


if os.environ.get(GATE_VARIABLE) and os.environ.get(STEP_VARIABLE):
    hold_restore_at(os.environ[STEP_VARIABLE], Path(os.environ[GATE_VARIABLE]))
