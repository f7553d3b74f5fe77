"""A gate in a move job, for tests: one step of services.moves.steps waits while a file exists,
before its work (`<step>`) or after it, before the step is recorded (`<step>:after`), so a test
can look at the tenant there, write to it there, or SIGKILL the worker there.

Imported by a `tenantry serve` or `tenantry worker` subprocess through
TENANTRY_JOB_MODULES=tests.workers.move_gate, with TENANTRY_TEST_MOVE_GATE=<file> and
TENANTRY_TEST_MOVE_GATE_AT=<step>; in the test process, `hold_move_at` puts one in place. The gate
is the restore's (tests/workers/restore_gate.py) on the move's steps. Keep it light: services
only, no test tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from services.moves import steps
from tests.workers.restore_gate import hold_restore_at

GATE_VARIABLE = "TENANTRY_TEST_MOVE_GATE"
STEP_VARIABLE = "TENANTRY_TEST_MOVE_GATE_AT"


def hold_move_at(where: str, gate: Path) -> Callable[[], None]:
    """Put a gate at `where` ("copy", "swap:after", …) of every move job; returns what takes it away."""
    return hold_restore_at(where, gate, steps.MOVE_STEPS)


if os.environ.get(GATE_VARIABLE) and os.environ.get(STEP_VARIABLE):
    hold_move_at(os.environ[STEP_VARIABLE], Path(os.environ[GATE_VARIABLE]))
