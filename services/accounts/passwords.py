"""Argon2 password hashing, and the generated passwords Tenantry shows exactly once."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

#: Set by the test suite alone (tests/conftest.py), never by an installation: a test hashes and
#: verifies passwords many times, and at full cost that was most of its time. A hash records its
#: own parameters, so either hasher verifies the other's hashes.
TEST_HASHING_VARIABLE = "TENANTRY_TEST_PASSWORD_HASHING"
CHEAPEST_HASHING = "cheapest"


def hasher_for(env: Mapping[str, str]) -> PasswordHasher:
    """RFC 9106's recommended parameters (64 MiB, 3 passes, 4 lanes), or Argon2's cheapest where the
    test suite asks for them; anything else in the variable is a mistake worth stopping for."""
    asked = env.get(TEST_HASHING_VARIABLE)
    if asked is None:
        return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
    if asked == CHEAPEST_HASHING:
        return PasswordHasher.from_parameters(CHEAPEST)
    raise ValueError(f"{TEST_HASHING_VARIABLE}={asked!r}: only {CHEAPEST_HASHING!r} is known (tests only)")


_hasher = hasher_for(os.environ)


@cache
def _decoy_hash() -> str:
    """Verified against when an email is unknown, so both failures cost the same time. Made on the
    first sign-in, not at import: every `tenantry` command would otherwise pay one full hash."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _decoy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)
