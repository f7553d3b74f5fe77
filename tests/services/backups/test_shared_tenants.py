"""A tenant in a shared store (many tenants' rows in one store, tagged with tenant_id) is backed
up portably: only its own rows are taken, the backup verifies in a store of its own, and a native
backup, which would take every tenant's rows, is refused."""

from __future__ import annotations

import pytest

from services.backups import request_backup
from services.errors import InvalidInput
from services.models import BackupFormat, IsolationMode, JobStatus, Verification
from tests.services.backups.support import MODULES, TEMPLATE, add, back_up, fill
from tests.services.provisioning.installation import (
    SQLITE_AND_POSTGRES_LANDLORDS,
    Installation,
    Landlord,
    query,
)


@pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_LANDLORDS, indirect=True)
def test_a_shared_tenant_is_backed_up_portably_with_only_its_own_rows(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        shared = Landlord(landlord.database, landlord.settings, IsolationMode.SHARED)
        harbour, job = await shared.provision("harbour-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        # Without finance: the store's finance tables hold none of its rows.
        river, job = await shared.provision("river-club", TEMPLATE, ["events"])
        assert job.error is None, job.error
        await fill(shared.store(harbour), harbour)
        await add(shared.store(river), river, "venues", name="Boathouse", city="York", seats=40)
        everyone = await query(shared.store(harbour), "SELECT count(*) FROM venues")
        assert everyone == [(3,)], "both tenants' venues are in the one store"

        backup, job = await back_up(shared, harbour, BackupFormat.PORTABLE)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        assert backup.manifest is not None
        assert backup.manifest["tables"]["events"]["rows"] == 5
        assert backup.manifest["tables"]["venues"]["rows"] == 2
        assert backup.manifest["tables"]["users"]["rows"] == 1

        backup, job = await back_up(shared, river, BackupFormat.PORTABLE)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        assert backup.manifest is not None
        assert backup.manifest["tables"]["venues"]["rows"] == 1
        assert backup.manifest["tables"]["events"]["rows"] == 0
        assert [layer["key"] for layer in backup.manifest["layers"]] == [
            "basic",
            "templates/community_group",
            "modules/events",
        ]
        async with shared.database.session() as session:
            with pytest.raises(InvalidInput, match="portable format"):
                await request_backup(session, shared.settings, harbour, BackupFormat.NATIVE)

    installation.run(scenario)
