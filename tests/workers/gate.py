"""A gate a job waits at, for tests: while its file exists the job waits, having touched
`<file>.reached` so that the test knows it is there (to look at what it left, or SIGKILL it).
Loaded into worker processes by the gates of each kind of job: services only, no test tools."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

#: How long a shut gate holds before the job fails (a test that forgot to open it).
PATIENCE_SECONDS = 120.0


def reached(gate: Path) -> Path:
    """Touched when a worker arrives at the gate."""
    return Path(f"{gate}.reached")


async def wait_at(gate: Path) -> None:
    """Say the gate is reached, then wait while it is shut."""
    await asyncio.to_thread(reached(gate).touch)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while await asyncio.to_thread(gate.exists):
        if time.monotonic() > deadline:
            raise RuntimeError("the gate was never opened")
        # On the worker's event loop: the job's lease keeps being renewed while it waits.
        await asyncio.sleep(0.05)
