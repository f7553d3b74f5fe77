"""A gate in a restore job, for tests: one step of services.backups.restores waits while a file
exists, before its work (`<step>`) or after it, before the step is recorded (`<step>:after`), so a
test can look at the tenant there, or SIGKILL the worker there.

Imported by a `tenantry worker` or `tenantry serve` subprocess through
TENANTRY_JOB_MODULES=tests.workers.restore_gate, with TENANTRY_TEST_RESTORE_GATE=<file> and
TENANTRY_TEST_RESTORE_GATE_AT=<step>; in the test process, `hold_restore_at` puts one in place.
Keep it light: services only, no test tools."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import restores
from services.jobs import StepFunction

GATE_VARIABLE = "TENANTRY_TEST_RESTORE_GATE"
STEP_VARIABLE = "TENANTRY_TEST_RESTORE_GATE_AT"
#: How long a shut gate holds before the step fails (a test that forgot to open it).
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
        # On the worker's event loop: the job's lease keeps being renewed while it waits.
        await asyncio.sleep(0.05)


def _gated(step: StepFunction[Any], gate: Path, after: bool) -> StepFunction[Any]:
    async def gated(run: Any, session: AsyncSession) -> str:
        if not after:
            await _wait_at(gate)
        detail = await step(run, session)
        if after:
            await _wait_at(gate)
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
