"""Reading the audit trail: filtered pages for the viewer, each entry told as a sentence, and the
same filter as CSV.

A write staff make while switched into a tenant leaves two kinds of entries: the write's own
(`unit.rename`, recorded by its handler) and, once it has committed, a `switch.write` naming the
method and path (web/switching.py). The viewer shows them as one line saying who acted for whom;
the entries themselves stay as stored, and the CSV keeps each of them."""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.sentences import SwitchedWrite, sentence
from services.csv_export import csv_document
from services.layers.catalogue import Catalogue
from services.models import AuditEntry, Tenant, User
from services.pagination import Paging

CSV_COLUMNS = (
    "seq",
    "at",
    "actor_email",
    "actor_user_id",
    "tenant",
    "action",
    "target",
    "detail",
    "ip",
    "hash",
    "sentence",
)
SWITCH_ACTIONS = ("switch.start", "switch.write", "switch.end", "switch.expire")
SWITCHED_WRITE = "switch.write"
#: A switched write is recorded as the answer starts, moments after the write's own entries were:
#: entries further apart than this are not one write.
ONE_WRITE = timedelta(minutes=1)


@dataclass(frozen=True)
class AuditLine:
    """One line of the viewer: an entry told as a sentence. A write made while switched into a
    tenant is one line: its own entry, carrying the switched write's with it."""

    entry: AuditEntry
    #: None when the entry concerns no tenant, or the tenant no longer exists.
    tenant_slug: str | None
    sentence: str
    switched_write: AuditEntry | None = None

    @property
    def as_recorded(self) -> list[tuple[AuditEntry, list[tuple[str, str]]]]:
        """The stored entries the line tells, each with its detail's values as stored (JSON), for
        an auditor to check the sentence against."""
        entries = [self.entry, *filter(None, [self.switched_write])]
        return [
            (entry, [(key, _as_stored(value)) for key, value in sorted(entry.detail.items())])
            for entry in entries
        ]


@dataclass(frozen=True, kw_only=True)
class AuditPage(Paging):
    lines: list[AuditLine]


def _as_stored(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class _Switches:
    """Some people's switch entries over a while. An entry was made under a switch when the first
    of its author's switch entries from it on is a switched write, moments later, for its tenant."""

    def __init__(self, found: Iterable[tuple[AuditEntry, str | None, str | None]]) -> None:
        self._by_person: dict[int | None, list[AuditEntry]] = {}
        self._writes: dict[int, SwitchedWrite] = {}
        for entry, role, tenant_name in found:  # in the trail's order
            self._by_person.setdefault(entry.actor_user_id, []).append(entry)
            if entry.action == SWITCHED_WRITE:
                self._writes[entry.seq] = SwitchedWrite(entry, role, tenant_name)

    def write_of(self, entry: AuditEntry) -> SwitchedWrite | None:
        """The switched write `entry` belongs to (a `switch.write`: itself), if any."""
        if entry.actor_user_id is None or (entry.action in SWITCH_ACTIONS and entry.action != SWITCHED_WRITE):
            return None
        theirs = self._by_person.get(entry.actor_user_id, [])
        index = bisect_left(theirs, entry.seq, key=lambda switch: switch.seq)
        written = self._writes.get(theirs[index].seq) if index < len(theirs) else None
        if written is None or written.entry.at - entry.at > ONE_WRITE:
            return None
        return written if entry.tenant_id in (None, written.entry.tenant_id) else None


async def _switches_around(session: AsyncSession, entries: Sequence[AuditEntry]) -> _Switches:
    """The switch entries of the people who made `entries`, from just before the first to just
    after the last: enough to tell which of them were made under a switch."""
    people = {entry.actor_user_id for entry in entries if entry.actor_user_id is not None}
    if not people:
        return _Switches(())
    moments = [entry.at for entry in entries]
    found = await session.execute(
        select(AuditEntry, User.platform_role, Tenant.name)
        .outerjoin(User, User.id == AuditEntry.actor_user_id)
        .outerjoin(Tenant, Tenant.id == AuditEntry.tenant_id)
        .where(
            AuditEntry.action.in_(SWITCH_ACTIONS),
            AuditEntry.actor_user_id.in_(people),
            AuditEntry.at.between(min(moments) - ONE_WRITE, max(moments) + ONE_WRITE),
        )
        .order_by(AuditEntry.seq)
    )
    return _Switches(found)


async def _told_with_their_write(
    session: AsyncSession,
    switches: _Switches,
    writes: Sequence[AuditEntry],
    conditions: Sequence[ColumnElement[bool]],
) -> set[int]:
    """Which of the switched `writes` the view (its `conditions`) shows with an entry of their own,
    on this page or another: those are not shown apart. The others (a write that recorded nothing,
    or whose entries are filtered out) are."""
    if not writes:
        return set()
    around_each = [
        and_(
            AuditEntry.actor_user_id == write.actor_user_id,
            AuditEntry.seq < write.seq,
            AuditEntry.at >= write.at - ONE_WRITE,
        )
        for write in writes
    ]
    candidates = await session.scalars(
        select(AuditEntry).where(*conditions, AuditEntry.action.not_in(SWITCH_ACTIONS), or_(*around_each))
    )
    numbers = {write.seq for write in writes}
    return {
        written.entry.seq
        for candidate in candidates
        if (written := switches.write_of(candidate)) is not None and written.entry.seq in numbers
    }


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(
    actor: str, tenant: str, action: str, since: date | None, until: date | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if actor := actor.strip().lower():
        conditions.append(func.lower(AuditEntry.actor_email).contains(actor, autoescape=True))
    if tenant := tenant.strip().lower():
        conditions.append(
            AuditEntry.tenant_id == select(Tenant.id).where(Tenant.slug == tenant).scalar_subquery()
        )
    if action := action.strip():
        conditions.append(AuditEntry.action == action)
    if since is not None:
        conditions.append(AuditEntry.at >= _start_of(since))
    if until is not None:  # the whole day named
        conditions.append(AuditEntry.at < _start_of(until + timedelta(days=1)))
    return conditions


def _rows(conditions: Sequence[ColumnElement[bool]]) -> Select[AuditEntry, str | None, str | None]:
    return (
        select(AuditEntry, Tenant.slug, Tenant.name)
        .outerjoin(Tenant, Tenant.id == AuditEntry.tenant_id)
        .where(*conditions)
        .order_by(AuditEntry.seq.desc())
    )


async def search(
    session: AsyncSession,
    *,
    actor: str = "",
    tenant: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    per_page: int = 50,
    hidden_actions: tuple[str, ...] = (),
    catalogue: Catalogue | None = None,
) -> AuditPage:
    """Entries matching every filter given, newest first, one page at a time, as lines (a switched
    write and its entries make one). `actor` is part of an email, `tenant` a slug, `action` one of
    ACTIONS; `since` and `until` are inclusive days (UTC). `hidden_actions` are left out (what a
    tenant's own audit page must not show). `catalogue` gives modules their titles."""
    page, per_page = max(page, 1), min(max(per_page, 1), 200)
    conditions = _conditions(actor, tenant, action, since, until)
    if hidden_actions:
        conditions.append(AuditEntry.action.not_in(hidden_actions))
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    offset = (page - 1) * per_page
    if offset >= total:
        return AuditPage(lines=[], total=total, page=page, per_page=per_page)
    rows = (await session.execute(_rows(conditions).offset(offset).limit(per_page))).all()
    switches = await _switches_around(session, [entry for entry, _, _ in rows])
    writes = [entry for entry, _, _ in rows if entry.action == SWITCHED_WRITE]
    told_with_their_write = await _told_with_their_write(session, switches, writes, conditions)
    lines = []
    for entry, slug, name in rows:
        if entry.seq in told_with_their_write:
            continue
        written = switches.write_of(entry)
        told = sentence(entry, tenant_name=name, catalogue=catalogue, switched=written)
        carried = written.entry if written is not None and written.entry is not entry else None
        lines.append(AuditLine(entry, slug, told, carried))
    return AuditPage(lines=lines, total=total, page=page, per_page=per_page)


async def export_csv(
    session: AsyncSession,
    *,
    actor: str = "",
    tenant: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
    catalogue: Catalogue | None = None,
) -> str:
    """Every entry matching the filters (not one page), newest first, each as stored and as a
    sentence, as CSV with a header row (cells that would start a formula neutralised: emails and
    targets are typed by anyone)."""
    rows = (await session.execute(_rows(_conditions(actor, tenant, action, since, until)))).all()
    switches = await _switches_around(session, [entry for entry, _, _ in rows])
    return csv_document(
        CSV_COLUMNS,
        (
            (
                entry.seq,
                entry.at.isoformat(),
                entry.actor_email,
                entry.actor_user_id,
                slug or entry.tenant_id,
                entry.action,
                entry.target,
                json.dumps(entry.detail, sort_keys=True),
                entry.ip,
                entry.hash,
                sentence(entry, tenant_name=name, catalogue=catalogue, switched=switches.write_of(entry)),
            )
            for entry, slug, name in rows
        ),
    )
