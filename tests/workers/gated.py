"""Worker processes whose jobs wait at a gate (tests/workers/gate.py), for the tests that SIGKILL a
worker at a chosen step and let another resume: their settings, their processes, the kill."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType

from services.settings import Settings
from tests.services.running import Background, background, free_port, tenantry_env, wait_for
from tests.workers.gate import reached

#: A lease short enough that a killed worker's job is soon seen as abandoned and sent again.
LEASE_SECONDS = 2

#: Starts a worker process (held at the gate at a kill point, or None: not held) logging into a folder.
StartWorker = Callable[[str | None, Path], AbstractContextManager[Background]]


def gated_settings(landlord: Settings, gate_module: ModuleType, broker_url: str | None = None) -> Settings:
    """The installation's settings with the gate loaded into every worker process it starts."""
    return dataclasses.replace(
        landlord,
        job_lease_seconds=LEASE_SECONDS,
        job_modules=(gate_module.__name__,),
        broker_url=broker_url or landlord.broker_url,
    )


def gate_env(settings: Settings, gate_module: ModuleType, gate: Path, where: str | None) -> dict[str, str]:
    """A worker process's environment: its jobs held at `where` (None: not held)."""
    held = {gate_module.GATE_VARIABLE: str(gate), gate_module.STEP_VARIABLE: where} if where else {}
    return tenantry_env(settings, **held)


def serving(settings: Settings, gate_module: ModuleType, gate: Path) -> StartWorker:
    """`tenantry serve` processes, each on a port of its own."""
    return lambda where, logs: background(
        ["serve", "--port", str(free_port())], gate_env(settings, gate_module, gate, where), logs
    )


def working(settings: Settings, gate_module: ModuleType, gate: Path) -> StartWorker:
    """`tenantry worker` processes."""
    return lambda where, logs: background(
        ["worker", "--threads", "2"], gate_env(settings, gate_module, gate, where), logs
    )


def kill_when_reached(gate: Path, process: Background, what: str) -> None:
    """Wait until the worker has reached the gate (failing if it dies first), then SIGKILL it."""

    def arrived() -> bool:
        process.check_running()
        return reached(gate).exists()

    wait_for(arrived, 90, what=what, interval=0.05)
    process.process.kill()
    assert process.process.wait(10) == -signal.SIGKILL
