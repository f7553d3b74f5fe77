from __future__ import annotations

import pytest

from services.settings import Settings
from tests.services.running import migrate


@pytest.fixture
def landlord(settings: Settings) -> Settings:
    """The settings, with the landlord database migrated (no superadmin: jobs do not need one)."""
    return migrate(settings)
