"""Writing the audit trail and checking it. Each entry's hash covers the previous entry's hash and
its own content; the chain head (`audit_chain`) holds the last number and hash, so an altered,
removed, reordered or cut-off entry is found by walking the chain once."""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditChain, AuditEntry, Tenant, User
from services.models.types import utcnow

GENESIS = "0" * 64
HEAD_ID = 1

#: Every action the trail records (the audit viewer filters by them; an unknown one is refused).
ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "user.create",
    "account.password_change",
    "account.password_reset",
    "account.sign_out_elsewhere",
    "token.create",
    "token.revoke",
    "tenant.request",
    "tenant.retry",
    "tenant.custom_apply",
    "tenant.custom_rollback",
    "tenant.backup",
    "tenant.backup_verify",
    "tenant.backup_download",
    "tenant.backup_schedule",
    "tenant.backup_schedule_clear",
    "tenant.restore",
    "tenant.restore_copy",
    "backup.prune",
    "tenant.setting",
    "tenant.plan",
    "tenant.rate_limits",
    "tenant.suspend",
    "tenant.resume",
    "tenant.delete",
    "tenant.undelete",
    "tenant.drop",
    "tenant.move",
    "tenant.moved",
    "tenant.split",
    "tenant.split_off",
    "tenant.merge",
    "tenant.merged",
    "moveplan.start",
    "moveplan.pause",
    "moveplan.resume",
    "moveplan.cancel",
    "rollout.start",
    "rollout.pause",
    "rollout.resume",
    "rollout.cancel",
    "rollout.rollback",
    "drift.check",
    "module.enable",
    "module.disable",
    "unit.create",
    "unit.rename",
    "unit.move",
    "unit.delete",
    "person.invite",
    "person.first_admin",
    "person.role",
    "person.units",
    "person.deactivate",
    "person.reactivate",
    "record.create",
    "record.update",
    "record.delete",
    "security.cross_tenant",
    "switch.start",
    "switch.write",
    "switch.end",
    "switch.expire",
    "user.switch_grant",
    "user.switch_revoke",
)


@dataclass(frozen=True)
class Actor:
    """Who acted: a user, or only an email (a failed sign-in, the command line)."""

    email: str
    user_id: int | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(email=user.email, user_id=user.id)


@dataclass(frozen=True)
class Caller:
    """Who asks for a use case, as the audit trail records them: the person (or token's person),
    the address they asked from, and the prefix of the API token they used, if any. Use cases take
    a Caller, never a web request: the portal and the API build one each and call the same use case."""

    actor: Actor | User
    ip: str | None = None
    token_prefix: str | None = None

    @property
    def is_staff(self) -> bool:
        """The platform's staff, or an operator at the command line: not held to a tenant's quotas."""
        return not isinstance(self.actor, User) or self.actor.is_landlord_staff

    def with_token(self, detail: dict[str, Any]) -> dict[str, Any]:
        """`detail`, naming the token the caller used (an API call), if any."""
        return {**detail, "token": self.token_prefix} if self.token_prefix else detail


def command_line_actor() -> Actor:
    """The operator at the `tenantry` command line, named by their login where the system knows it."""
    try:
        return Actor(email=f"cli:{getpass.getuser()}")
    except (OSError, KeyError):
        return Actor(email="cli")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    actor_email: str,
    actor_user_id: int | None,
    tenant_id: int | None,
    action: str,
    target: str | None,
    detail: dict[str, Any],
    ip: str | None,
) -> str:
    content = _canonical(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor_email": actor_email,
            "actor_user_id": actor_user_id,
            "tenant_id": tenant_id,
            "action": action,
            "target": target,
            "detail": detail,
            "ip": ip,
        }
    )
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def _hash_of(entry: AuditEntry, prev_hash: str) -> str:
    return entry_hash(
        prev_hash=prev_hash,
        seq=entry.seq,
        at=entry.at,
        actor_email=entry.actor_email,
        actor_user_id=entry.actor_user_id,
        tenant_id=entry.tenant_id,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        ip=entry.ip,
    )


async def record_by(
    session: AsyncSession,
    caller: Caller,
    action: str,
    *,
    tenant: Tenant | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append `action` by `caller`, against `tenant` (named as the target unless `target` is)."""
    return await record(
        session,
        action=action,
        actor=caller.actor,
        tenant_id=tenant.id if tenant else None,
        target=target or (tenant.slug if tenant else None),
        detail=detail,
        ip=caller.ip,
    )


async def record(
    session: AsyncSession,
    *,
    action: str,
    actor: Actor | User,
    tenant_id: int | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction: it commits (or rolls back) with what it records."""
    if action not in ACTIONS:
        raise ValueError(f"{action!r} is not an audit action: add it to ACTIONS")
    who = Actor.of(actor) if isinstance(actor, User) else actor
    # Taking the next number locks the head row until this transaction ends, so concurrent
    # writers queue here and the chain stays one line.
    taken = await session.execute(
        update(AuditChain)
        .where(AuditChain.id == HEAD_ID)
        .values(seq=AuditChain.seq + 1)
        .returning(AuditChain.seq, AuditChain.hash)
    )
    seq, prev_hash = taken.one()
    # Stored exactly as hashed: whatever JSON makes of the values is what verify will read back.
    detail = json.loads(_canonical(detail or {}))
    entry = AuditEntry(
        seq=seq,
        at=utcnow(),
        actor_user_id=who.user_id,
        actor_email=who.email,
        tenant_id=tenant_id,
        action=action,
        target=target,
        detail=detail,
        ip=ip,
        prev_hash=prev_hash,
    )
    entry.hash = _hash_of(entry, prev_hash)
    session.add(entry)
    await session.execute(update(AuditChain).where(AuditChain.id == HEAD_ID).values(hash=entry.hash))
    await session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    #: Entries checked before the first problem (all of them when ok).
    count: int
    broken_at: int | None = None
    problem: str | None = None


async def verify(session: AsyncSession) -> VerifyResult:
    """Walk the trail in order and report the first entry that was altered, removed or moved,
    or a tail that was cut off (the chain head names a later entry than the last one)."""
    expected_seq, prev_hash = 1, GENESIS
    entries = await session.stream_scalars(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=500)
    )
    async for entry in entries:
        checked = expected_seq - 1
        if entry.seq != expected_seq:
            return VerifyResult(
                False,
                checked,
                expected_seq,
                f"missing: the trail jumps from #{expected_seq - 1} to #{entry.seq}",
            )
        if entry.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, entry.seq, f"out of order: it does not follow entry #{entry.seq - 1}"
            )
        if _hash_of(entry, prev_hash) != entry.hash:
            return VerifyResult(False, checked, entry.seq, "altered: its content does not match its hash")
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    last = expected_seq - 1
    head = await session.get(AuditChain, HEAD_ID)
    if head is None:
        return VerifyResult(False, last, last + 1, "the chain head is missing")
    if head.seq > last:
        return VerifyResult(
            False,
            last,
            last + 1,
            f"missing: the trail ends at #{last} but the chain head records #{head.seq}",
        )
    if head.seq < last or head.hash != prev_hash:
        return VerifyResult(False, last, last, "the chain head does not match the last entry")
    return VerifyResult(True, last)
