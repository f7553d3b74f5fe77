from __future__ import annotations

import pytest

from services.settings import Settings


@pytest.fixture
def landlord(settings: Settings) -> Settings:
    """The settings, the landlord database migrated (as `database_url` gives it) and no superadmin:
    jobs do not need one."""
    return settings
