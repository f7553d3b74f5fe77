"""A worker process knows every kind of job the portal, the API and the command line record: a kind
it does not know would fail as "no handler" the moment it arrived."""

from __future__ import annotations

import subprocess
import sys

from services.backups.copies import RESTORE_COPY
from services.backups.requests import BACKUP, RESTORE, VERIFY_BACKUP
from services.modules.requests import DISABLE_MODULE, ENABLE_MODULES
from services.provisioning.custom import APPLY_CUSTOM, ROLLBACK_CUSTOM
from services.provisioning.tenants import PROVISION
from services.rollouts.drift_checks import CHECK_DRIFT
from services.rollouts.runs import ROLLOUT_LANE
from tests.services.running import ROOT

RECORDED_KINDS = {
    BACKUP,
    VERIFY_BACKUP,
    RESTORE,
    RESTORE_COPY,
    ENABLE_MODULES,
    DISABLE_MODULE,
    APPLY_CUSTOM,
    ROLLBACK_CUSTOM,
    PROVISION,
    CHECK_DRIFT,
    ROLLOUT_LANE,
}


def test_a_fresh_worker_process_knows_every_kind_of_job() -> None:
    known = subprocess.run(
        [
            sys.executable,
            "-c",
            "import workers.actors, services.jobs; print(*sorted(services.jobs._handlers))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert set(known) >= RECORDED_KINDS, f"unknown to a worker: {sorted(RECORDED_KINDS - set(known))}"
