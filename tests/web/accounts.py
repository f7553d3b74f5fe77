"""What the tests of accounts (tokens, sessions, resets) share: the audit trail's entries of an
action, a bearer header, and the secret a page shows once."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry
from services.settings import Settings
from tests.support import run_db


def trail(settings: Settings, action: str) -> list[AuditEntry]:
    """The entries of `action` on the landlord's audit trail, oldest first."""

    async def work(session: AsyncSession) -> list[AuditEntry]:
        statement = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        return list(await session.scalars(statement))

    return run_db(settings, work)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def shown_once(html: str, element_id: str) -> str:
    """The secret (a token's, a password) a page shows in the element `element_id`."""
    found = re.search(rf'<code class="secret" id="{element_id}">([^<]+)</code>', html)
    assert found, f"the page shows no #{element_id}"
    return found.group(1)
