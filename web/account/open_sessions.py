"""Your sessions (/account/sessions): every browser signed in as you, when, from where and on what,
and "Sign out everywhere else"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from litestar import Request

from services.models import User
from web.account.password_first import ACCOUNT_PAGE
from web.auth import SESSION_USER
from web.sessions import SIGNED_IN_FROM, SIGNED_IN_ON, signed_in_at, signed_in_since
from web.stores import LandlordStore

SESSIONS_PAGE = f"{ACCOUNT_PAGE}/sessions"


@dataclass(frozen=True)
class OpenSession:
    """What its owner is shown of a session; never its id, which would let anyone reading the page
    in."""

    signed_in_at: datetime | None
    address: str
    device: str
    expires_at: datetime | None
    is_this_one: bool


async def open_sessions(request: Request[Any, Any, Any], user: User) -> list[OpenSession]:
    """The sessions in which `user` is signed in and still let in, this one first, then the latest.

    Sessions are kept by id, not by person: this reads every live session of the installation and
    decodes each to find the user's. That is one query and a JSON decode per signed-in browser,
    fine for a page someone opens now and then; an index by person would be the next step if
    installations grow to hundreds of thousands of open sessions."""
    # create_app registers a LandlordStore under this name.
    store = cast(LandlordStore, request.app.stores.get("sessions"))
    this_one = request.get_session_id()
    found = []
    for entry in await store.live_entries():
        try:
            data = json.loads(entry.value)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get(SESSION_USER) != user.id:
            continue
        if not signed_in_since(data, user.sessions_valid_after):
            continue
        found.append(
            OpenSession(
                signed_in_at=signed_in_at(data),
                address=str(data.get(SIGNED_IN_FROM, "unknown")),
                device=str(data.get(SIGNED_IN_ON, "unknown")),
                expires_at=entry.expires_at,
                is_this_one=entry.key == this_one,
            )
        )
    return sorted(found, key=_this_one_then_latest)


def _this_one_then_latest(session: OpenSession) -> tuple[bool, float]:
    signed_in = session.signed_in_at.timestamp() if session.signed_in_at else 0.0
    return (not session.is_this_one, -signed_in)
