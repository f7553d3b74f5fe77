"""Who is calling: a bearer token's live token, or a session's active user, with the memberships
they act through. Asked on every request, answered from the landlord cache
(services.landlord_cache) while nothing in the landlord database has changed since, so that a
revoke, a deactivation or a changed membership is seen by the very next request.

What it gives are detached rows, shared by the requests that ask while they stay valid: read
them, never change them or add them to a session (look a row up again to change it)."""

from __future__ import annotations

from services.accounts.tokens import (
    TOKEN_PREFIX,
    authenticate_token,
    has_expired,
    last_use_is_recorded,
    token_digest,
)
from services.accounts.users import get_active_user
from services.db import Database
from services.landlord_cache import LandlordMarks, UnchangedSince
from services.models import ApiToken, User

#: Tokens and users remembered at most (each a few kilobytes with its memberships).
REMEMBERED = 10_000


def _still_good(token: ApiToken) -> bool:
    return last_use_is_recorded(token) and not has_expired(token)


class Identities:
    def __init__(self, database: Database, marks: LandlordMarks, *, remembered: int = REMEMBERED) -> None:
        self.database = database
        self._tokens: UnchangedSince[str, ApiToken] = UnchangedSince(marks, remembered)
        self._users: UnchangedSince[int, User] = UnchangedSince(marks, remembered)

    async def of_token(self, secret: str) -> ApiToken | None:
        """The live token for this secret (services.accounts.tokens.authenticate_token), or None.
        Its last use is written at most once per `LAST_USE_PRECISION`, through a fresh read; one
        remembered past its expiry is read afresh (and refused), since no commit marks that moment."""
        if not secret.startswith(TOKEN_PREFIX):
            return None

        async def read() -> ApiToken | None:
            async with self.database.session() as session:
                return await authenticate_token(session, secret)

        return await self._tokens.get(token_digest(secret), read, still_good=_still_good)

    async def of_user(self, user_id: int) -> User | None:
        """The active user with this id, or None."""

        async def read() -> User | None:
            async with self.database.session() as session:
                return await get_active_user(session, user_id)

        return await self._users.get(user_id, read)
