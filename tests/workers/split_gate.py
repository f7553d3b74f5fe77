"""A gate in a split job, for tests: one step of services.moves.split waits while a file exists,
before its work (`<step>`) or after it, before the step is recorded (`<step>:after`).

Imported by a `tenantry serve` or `tenantry worker` subprocess through
TENANTRY_JOB_MODULES=tests.workers.split_gate, with TENANTRY_TEST_SPLIT_GATE=<file> and
TENANTRY_TEST_SPLIT_GATE_AT=<step>; in the test process, `hold_split_at` puts one in place.
Keep it light: services only, no test tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from services.moves import split
from tests.workers.restore_gate import hold_restore_at

GATE_VARIABLE = "TENANTRY_TEST_SPLIT_GATE"
STEP_VARIABLE = "TENANTRY_TEST_SPLIT_GATE_AT"


def hold_split_at(where: str, gate: Path) -> Callable[[], None]:
    """Put a gate at `where` ("copy", "remove from source:after", …) of every split job; returns
    what takes it away."""
    return hold_restore_at(where, gate, split.SPLIT_STEPS)


if os.environ.get(GATE_VARIABLE) and os.environ.get(STEP_VARIABLE):
    hold_split_at(os.environ[STEP_VARIABLE], Path(os.environ[GATE_VARIABLE]))
