"""Moves run on the installations provisioning tests use."""

from tests.services.provisioning.conftest import (  # noqa: F401  (fixtures, used by name)
    installation,
    shared_installation,
    sqlite_installation,
)
