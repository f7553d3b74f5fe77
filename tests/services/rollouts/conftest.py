"""Rollouts run over installations like provisioning's (tests/services/provisioning/conftest.py)."""

from tests.services.provisioning.conftest import installation, shared_installation, sqlite_installation

__all__ = ["installation", "shared_installation", "sqlite_installation"]
