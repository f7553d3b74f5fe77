"""The test suite hashes passwords at Argon2's cheapest cost; an installation never does."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import extract_parameters
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from services.accounts.passwords import TEST_HASHING_VARIABLE, hash_password, hasher_for, verify_password
from tests.services.running import ROOT, tenantry_env

HASH_ONE = "from services.accounts.passwords import hash_password; print(hash_password('correct horse'))"


def test_an_installation_hashes_passwords_at_rfc_9106_cost() -> None:
    env = {name: value for name, value in tenantry_env().items() if name != TEST_HASHING_VARIABLE}
    made = subprocess.run(
        [sys.executable, "-c", HASH_ONE], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    parameters = extract_parameters(made.stdout.strip())
    assert parameters == RFC_9106_LOW_MEMORY
    assert (parameters.memory_cost, parameters.time_cost) >= (64 * 1024, 3)
    assert verify_password(made.stdout.strip(), "correct horse")


def test_the_test_suite_hashes_at_the_cheapest_cost_and_nothing_else_is_taken() -> None:
    assert extract_parameters(hash_password("correct horse")) == CHEAPEST
    with pytest.raises(ValueError, match=TEST_HASHING_VARIABLE):
        hasher_for({TEST_HASHING_VARIABLE: "low"})
