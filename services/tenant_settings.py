"""A tenant's own settings, kept in its store (`settings`): its name, its timezone and the accent
colour of its portal. The name is also the landlord's name for the tenant, so both change together."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import FieldErrors, InvalidInput
from services.models import Tenant
from services.models.tenant import Setting

DEFAULT_TIMEZONE = "UTC"
DEFAULT_ACCENT = "#2f5bd3"
_COLOUR = re.compile(r"^#[0-9a-f]{6}$")


@dataclass(frozen=True)
class TenantSettings:
    name: str
    timezone: str
    accent_colour: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, moment: datetime) -> datetime:
        """`moment` in the tenant's timezone (a time without a zone is UTC, as stores keep it)."""
        return on_clock(moment, self.timezone)

    @property
    def accent_ink(self) -> str:
        """Text on the accent colour: white on a dark accent, near-black on a light one."""
        red, green, blue = (int(self.accent_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
        luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
        return "#ffffff" if luminance < 0.4 else "#1d2433"


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("Give the tenant a name.", field="name")
    if len(name) > 200:
        raise InvalidInput("A name is at most 200 characters.", field="name")
    return name


def _timezone(timezone: str) -> str:
    timezone = timezone.strip()
    if timezone not in timezone_names():
        raise InvalidInput(
            f"{timezone or 'An empty timezone'!r} is not a timezone; use a name like Europe/Paris or UTC.",
            field="timezone",
        )
    return timezone


def _colour(colour: str) -> str:
    colour = colour.strip().lower()
    if not _COLOUR.match(colour):
        raise InvalidInput("An accent colour is # and six hex digits, like #2f5bd3.", field="accent_colour")
    return colour


async def read_settings(data: AsyncSession, tenant: Tenant) -> TenantSettings:
    """The tenant's settings; one never written yet has its default (the name: the landlord's)."""
    stored = {setting.key: setting.value for setting in await data.scalars(select(Setting))}
    timezone = stored.get("timezone", DEFAULT_TIMEZONE)
    return TenantSettings(
        name=stored.get("name") or tenant.name,
        timezone=timezone if timezone in timezone_names() else DEFAULT_TIMEZONE,
        accent_colour=stored.get("accent_colour") or DEFAULT_ACCENT,
    )


async def update_settings(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    *,
    name: str,
    timezone: str,
    accent_colour: str,
) -> dict[str, tuple[str, str]]:
    """Check every setting (all mistakes at once, nothing written unless all are right) and write
    the ones that changed. What changed: {setting: (before, after)}."""
    errors = FieldErrors()
    wanted: dict[str, str] = {}
    with errors.checking("name"):
        wanted["name"] = _name(name)
    with errors.checking("timezone"):
        wanted["timezone"] = _timezone(timezone)
    with errors.checking("accent_colour"):
        wanted["accent_colour"] = _colour(accent_colour)
    errors.raise_if_any()

    current = asdict(await read_settings(data, tenant))
    changed = {key: (current[key], value) for key, value in wanted.items() if current[key] != value}
    stored = {setting.key: setting for setting in await data.scalars(select(Setting))}
    for key, (_, value) in changed.items():
        if key in stored:
            stored[key].value = value
        else:
            data.add(Setting(key=key, value=value))
    if "name" in changed:
        (await landlord.get_one(Tenant, tenant.id)).name = wanted["name"]
    await keep_clock(landlord, tenant.id, wanted["timezone"])
    await data.flush()
    await landlord.flush()
    return changed


async def keep_clock(landlord: AsyncSession, tenant_id: int, timezone: str) -> None:
    """The tenant's clock kept with it in the landlord, as its settings say (every page of its
    portal reads it there: `on_clock`)."""
    kept = await landlord.get_one(Tenant, tenant_id)
    if kept.timezone != timezone:
        kept.timezone = timezone


def on_clock(moment: datetime, timezone: str) -> datetime:
    """`moment` on the clock of `timezone` (a time without a zone is UTC, as stores keep it)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone if timezone in timezone_names() else DEFAULT_TIMEZONE))


async def change_settings(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    *,
    name: str,
    timezone: str,
    accent_colour: str,
) -> dict[str, tuple[str, str]]:
    """The settings `caller` asked for, written (see `update_settings`: a mistake leaves nothing
    written), each one changed on the audit trail (`tenant.setting`). What changed."""
    async with landlord.begin_nested(), data.begin_nested():
        changed = await update_settings(
            landlord, data, tenant, name=name, timezone=timezone, accent_colour=accent_colour
        )
    for setting, (before, after) in changed.items():
        detail = {"setting": setting, "from": before, "to": after}
        await record_by(landlord, caller, "tenant.setting", tenant=tenant, detail=caller.with_token(detail))
    return changed
