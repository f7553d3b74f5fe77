"""A gate in a merge job, for tests (see tests/workers/split_gate.py): one step of
services.moves.merge waits while a file exists, before its work or after it (`<step>:after`).
Keep it light: services only, no test tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from services.moves import merge
from tests.workers.restore_gate import hold_restore_at

GATE_VARIABLE = "TENANTRY_TEST_MERGE_GATE"
STEP_VARIABLE = "TENANTRY_TEST_MERGE_GATE_AT"


def hold_merge_at(where: str, gate: Path) -> Callable[[], None]:
    return hold_restore_at(where, gate, merge.MERGE_STEPS)


if os.environ.get(GATE_VARIABLE) and os.environ.get(STEP_VARIABLE):
    hold_merge_at(os.environ[STEP_VARIABLE], Path(os.environ[GATE_VARIABLE]))
