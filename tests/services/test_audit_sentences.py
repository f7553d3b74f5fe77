"""The audit trail in sentences: every action reads as something a person would say, with the
before and after of a change, modules by their titles and times to the second; a write staff made
while switched into a tenant reads as one line saying who acted for whom, wherever the page ends
and whatever the filter, while the trail keeps both of its entries as they were stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import ACTIONS, Actor, AuditPage, SwitchedWrite, record, search, sentence, verify
from services.layers.catalogue import load_catalogue
from services.models import AuditEntry, Tenant
from services.settings import PROJECT_ROOT, Settings
from tests.support import Credentials, run_db
from tests.web.portal import add_tenant, find_user

CATALOGUE = load_catalogue(PROJECT_ROOT / "layers")
AT = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
ANNA = "anna@reed.example"

#: A detail for each action, shaped as the code that records it shapes it.
RECORDED: dict[str, tuple[str | None, dict[str, Any]]] = {
    "sign_in_failed": (None, {"throttled": True}),
    "user.create": ("lee@landlord.example", {}),
    "account.password_change": (ANNA, {}),
    "account.password_reset": ("bo@reed.example", {}),
    "token.create": ("lee@landlord.example", {"token": 3, "prefix": "tnt_ab12cd", "name": "ci"}),
    "token.revoke": ("lee@landlord.example", {"token": 3, "prefix": "tnt_ab12cd", "name": "ci"}),
    "tenant.request": ("reed-choir", {"job": 12, "first_admin": "bo@reed.example"}),
    "tenant.retry": ("reed-choir", {"job": 13}),
    "tenant.custom_apply": ("reed-choir", {"job": 14}),
    "tenant.custom_rollback": ("reed-choir", {"job": 15}),
    "tenant.backup": ("reed-choir", {"backup": 4, "job": 16, "format": "portable"}),
    "tenant.backup_verify": ("reed-choir", {"backup": 4, "job": 17}),
    "tenant.backup_download": ("reed-choir", {"backup": 4, "sha256": "ab" * 32}),
    "tenant.backup_schedule": ("reed-choir", {"daily_at": "03:00", "format": "native", "keep": 7}),
    "tenant.restore": ("reed-choir", {"backup": 4, "job": 18, "format": "native"}),
    "tenant.restore_copy": (
        "reed-copy",
        {"from": "reed-choir", "backup": 4, "job": 19, "isolation": "shared"},
    ),
    "backup.prune": ("reed-choir", {"backups": [1, 2], "keep": 3, "job": 20}),
    "tenant.setting": ("reed-choir", {"setting": "accent_colour", "from": "#123456", "to": "#654321"}),
    "tenant.plan": ("reed-choir", {"from": "Starter", "to": "Standard"}),
    "tenant.rate_limits": (
        "reed-choir",
        {
            "before": {"tenant": {"write": 120}, "each": {}},
            "after": {"tenant": {"write": 60}},
            "from_plan": False,
        },
    ),
    "tenant.suspend": ("reed-choir", {"reason": "Unpaid since March"}),
    "tenant.delete": ("reed-choir", {"job": 21}),
    "tenant.drop": ("reed-choir", {"job": 22, "backup": 8}),
    "tenant.move": (
        "reed-choir",
        {"move": 3, "from": "a SQLite database", "to": "a PostgreSQL schema", "job": 23, "back_of": 2},
    ),
    "tenant.moved": (
        "reed-choir",
        {
            "move": 3,
            "from": "a SQLite database",
            "to": "a PostgreSQL schema",
            "rows": 1200,
            "tables": 18,
            "copy_ms": 2100,
            "freeze_ms": 2350,
            "job": 23,
        },
    ),
    "rollout.start": (
        "rollout #5",
        {"target": "modules/events to its head", "selection": "every tenant", "tenants": 3},
    ),
    "rollout.pause": ("rollout #5", {}),
    "rollout.resume": ("rollout #5", {}),
    "rollout.cancel": ("rollout #5", {}),
    "rollout.rollback": ("rollout #5", {"rollback": 6}),
    "drift.check": (None, {"tenants": 5, "drifted": [3, 4], "unchecked": ["owls"]}),
    "module.enable": (
        "reed-choir",
        {"job": 23, "modules": ["finance", "simple_ledger"], "required": ["finance"]},
    ),
    "module.disable": ("reed-choir", {"job": 24, "module": "events", "keep_data": True}),
    "unit.create": ("reed-choir", {"unit": "North"}),
    "unit.rename": ("reed-choir", {"unit": "North HQ", "was": "North"}),
    "unit.move": ("reed-choir", {"unit": "North", "parent": "Central"}),
    "unit.delete": ("reed-choir", {"unit": "North"}),
    "person.invite": ("bo@reed.example", {"role": "tenant_admin", "units": ["North", "South"]}),
    "person.first_admin": ("bo@reed.example", {}),
    "person.role": ("bo@reed.example", {"role": "tenant_admin", "was": "tenant_member"}),
    "person.units": ("bo@reed.example", {"units": ["North"]}),
    "person.deactivate": ("bo@reed.example", {}),
    "person.reactivate": ("bo@reed.example", {}),
    "record.create": ("reed-choir", {"table": "party_members", "id": 26}),
    "record.update": (
        "reed-choir",
        {"table": "party_members", "id": 26, "before": {"name": "Anna"}, "after": {"name": "Anne"}},
    ),
    "record.delete": ("reed-choir", {"table": "party_members", "id": 26}),
    "security.cross_tenant": (
        "reed-choir",
        {"what": "entered another tenant's portal", "method": "GET", "path": "/t/reed-choir/"},
    ),
    "switch.start": (
        "reed-choir",
        {"reason": "Ticket 4711", "expires_at": "2025-03-04T05:36:07.891011+00:00"},
    ),
    "switch.write": ("reed-choir", {"method": "POST", "path": "/t/reed-choir/units/3/rename"}),
    "switch.end": (
        "reed-choir",
        {
            "cause": "exit",
            "started_at": "2025-03-04T05:06:07.891011+00:00",
            "expires_at": "2025-03-04T05:36:07+00:00",
        },
    ),
    "switch.expire": (
        "reed-choir",
        {
            "cause": "expired",
            "started_at": "2025-03-04T05:06:07+00:00",
            "expires_at": "2025-03-04T05:36:07.5+00:00",
        },
    ),
    "user.switch_grant": ("lee@landlord.example", {}),
    "user.switch_revoke": ("lee@landlord.example", {}),
}


def entry(
    action: str, detail: dict[str, Any] | None = None, target: str | None = None, **fields: Any
) -> AuditEntry:
    values: dict[str, Any] = {"seq": 1, "at": AT, "actor_email": ANNA, "actor_user_id": 7, "tenant_id": 3}
    return AuditEntry(**{**values, **fields}, action=action, target=target, detail=detail or {})


def told(action: str, detail: dict[str, Any] | None = None, target: str | None = None, **fields: Any) -> str:
    return sentence(entry(action, detail, target, **fields), tenant_name="Reed Choir", catalogue=CATALOGUE)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_is_said_in_words_not_as_stored_keys_and_values(action: str) -> None:
    target, detail = RECORDED.get(action, ("reed-choir", {}))

    said, said_of_nothing = told(action, detail, target), told(action)

    for words in (said, said_of_nothing):
        assert action not in words, f"{action} has no sentence: {words}"
        assert not any(raw in words for raw in ("=", "None", "{", "['", "True", "False")), words
    unsaid = [key for key in detail if key not in ("job", "token") and f"{key.replace('_', ' ')}:" in said]
    assert not unsaid, f"{action} leaves {unsaid} unsaid: {said}"
    assert not any(microseconds in said for microseconds in (".891011", ".5+")), said


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (
            "module.disable",
            "anna@reed.example disabled the Events module of Reed Choir, keeping its data (job #24)",
        ),
        (
            "module.enable",
            "anna@reed.example enabled the Simple ledger module of Reed Choir, with the Finance module, "
            "which it needs (job #23)",
        ),
        (
            "tenant.request",
            "anna@reed.example asked for the tenant Reed Choir, with bo@reed.example as its first admin (job #12)",
        ),
        (
            "record.update",
            "anna@reed.example changed row #26 of Party members in Reed Choir: name from 'Anna' to 'Anne'",
        ),
        (
            "tenant.rate_limits",
            "anna@reed.example gave Reed Choir rate limits of its own (requests a minute): tenant write from 120 to 60",
        ),
        (
            "tenant.setting",
            "anna@reed.example changed the accent colour of Reed Choir from '#123456' to '#654321'",
        ),
        (
            "switch.start",
            "anna@reed.example switched into Reed Choir until 2025-03-04 05:36:07 UTC, saying: “Ticket 4711”",
        ),
        (
            "person.role",
            "anna@reed.example changed the role of bo@reed.example in Reed Choir, from member to admin",
        ),
        ("sign_in_failed", "A sign-in as anna@reed.example was refused: too many failed attempts"),
    ],
)
def test_representative_entries_read_as_sentences(action: str, words: str) -> None:
    target, detail = RECORDED[action]

    assert told(action, detail, target) == words


def test_what_no_sentence_knows_still_shows_readably() -> None:
    detail = {
        "job": 9,
        "module": "events",
        "keep_data": False,
        "token": "tnt_ab12cd",
        "reason": "Season over",
        "checked_at": "2025-01-02T03:04:05.6+00:00",
    }

    assert told("module.disable", detail) == (
        "anna@reed.example disabled the Events module of Reed Choir, dropping its data "
        "(job #9; checked at: 2025-01-02 03:04:05 UTC; reason: 'Season over'; API token tnt_ab12cd)"
    )
    assert told("record.archive", {"table": "party_members", "id": 26}) == (
        "anna@reed.example did record.archive in Reed Choir (id: 26; table: 'party_members')"
    )


def test_the_platform_itself_and_the_command_line_are_named_in_words() -> None:
    assert told("tenant.backup", {"backup": 2, "job": 3}, actor_email="schedule") == (
        "The schedule backed up Reed Choir as backup #2 (job #3)"
    )
    assert told("tenant.retry", {"job": 3}, actor_email="cli:lee").startswith(
        "lee at the command line retried"
    )


def test_a_write_made_switched_in_says_who_acted_for_whom() -> None:
    write = entry(
        "switch.write", RECORDED["switch.write"][1], "switch-club", actor_email="admin@localhost", seq=2
    )
    switched = SwitchedWrite(write, "superadmin", "Switch Club")
    rename = entry("unit.rename", {"unit": "North HQ", "was": "North"}, actor_email="admin@localhost")
    landlord_write = entry(
        "user.create", target="robin@landlord.example", actor_email="admin@localhost", tenant_id=None
    )

    assert sentence(rename, tenant_name="Switch Club", switched=switched) == (
        "admin@localhost (superadmin, switched in) renamed the unit North to North HQ for Switch Club"
    )
    assert sentence(landlord_write, switched=switched) == (
        "admin@localhost (superadmin, switched into Switch Club) created the account robin@landlord.example"
    )
    assert sentence(write, tenant_name="Switch Club", switched=switched) == (
        "admin@localhost (superadmin, switched in) made a change for Switch Club: POST /t/reed-choir/units/3/rename"
    )


# --- Switched writes on the viewer's pages ------------------------------------------------------


def a_switched_rename(settings: Settings, superadmin: Credentials) -> Tenant:
    """What the trail holds after staff switched into Switch Club and renamed a unit there, and
    someone else signed in while they did: the rename's entry, its switched write, then the other."""
    club = add_tenant(settings, "switch-club", "Switch Club")
    staff = find_user(settings, superadmin.email)
    assert staff is not None
    switcher = Actor(staff.email, staff.id)

    async def work(session: AsyncSession) -> None:
        for action, detail in (
            ("switch.start", {"reason": "Ticket 4711", "expires_at": "2999-01-01T00:00:00+00:00"}),
            ("unit.rename", {"unit": "North HQ", "was": "North"}),
            ("switch.write", {"method": "POST", "path": "/t/switch-club/units/3/rename"}),
        ):
            await record(
                session, action=action, actor=switcher, tenant_id=club.id, target=club.slug, detail=detail
            )
        await record(session, action="sign_in", actor=Actor("bo@reed.example", 99))

    run_db(settings, work)
    return club


def read(settings: Settings, **filters: Any) -> AuditPage:
    async def work(session: AsyncSession) -> AuditPage:
        return await search(session, catalogue=CATALOGUE, **filters)

    return run_db(settings, work)


SWITCHED_RENAME = (
    "admin@localhost (superadmin, switched in) renamed the unit North to North HQ for Switch Club"
)


def test_a_switched_write_is_one_line_and_the_trail_keeps_both_entries(
    settings: Settings, superadmin: Credentials
) -> None:
    a_switched_rename(settings, superadmin)

    lines = read(settings, tenant="switch-club").lines

    assert [line.sentence for line in lines] == [
        SWITCHED_RENAME,
        "admin@localhost switched into Switch Club until 2999-01-01 00:00:00 UTC, saying: “Ticket 4711”",
    ]
    assert lines[0].switched_write is not None and lines[0].switched_write.action == "switch.write"
    assert [entry.action for entry, _ in lines[0].as_recorded] == ["unit.rename", "switch.write"]

    async def stored(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))

    assert run_db(settings, stored)[-4:] == ["switch.start", "unit.rename", "switch.write", "sign_in"]
    assert run_db(settings, verify).ok


def test_a_switched_write_split_by_the_page_end_is_told_once_on_the_next_page(
    settings: Settings, superadmin: Credentials
) -> None:
    a_switched_rename(settings, superadmin)

    first, second = read(settings, per_page=2, page=1), read(settings, per_page=2, page=2)

    assert [line.entry.action for line in first.lines] == ["sign_in"], (
        "the switched write waits for its rename"
    )
    assert second.lines[0].sentence == SWITCHED_RENAME


def test_filtered_by_action_a_switched_write_still_says_so(
    settings: Settings, superadmin: Credentials
) -> None:
    a_switched_rename(settings, superadmin)

    renames = read(settings, action="unit.rename").lines
    writes = read(settings, action="switch.write").lines

    assert [line.sentence for line in renames] == [SWITCHED_RENAME]
    assert [line.sentence for line in writes] == [
        "admin@localhost (superadmin, switched in) made a change for Switch Club: POST /t/switch-club/units/3/rename"
    ]


def test_only_the_entries_a_switched_write_follows_are_switched(
    settings: Settings, superadmin: Credentials
) -> None:
    club = a_switched_rename(settings, superadmin)
    staff = find_user(settings, superadmin.email)
    assert staff is not None
    switcher = Actor(staff.email, staff.id)

    async def work(session: AsyncSession) -> None:
        for action, detail in (
            ("switch.end", {"cause": "exit"}),
            ("tenant.plan", {"to": "Starter"}),  # from the landlord's page, switched no more
            ("switch.start", {"reason": "Ticket 4712"}),
            ("switch.write", {"method": "POST", "path": "/t/switch-club/settings"}),  # it recorded nothing
        ):
            await record(session, action=action, actor=switcher, tenant_id=club.id, detail=detail)

    run_db(settings, work)

    assert [line.sentence for line in read(settings, tenant="switch-club").lines][:4] == [
        "admin@localhost (superadmin, switched in) made a change for Switch Club: POST /t/switch-club/settings",
        "admin@localhost switched into Switch Club, saying: “Ticket 4712”",
        "admin@localhost moved Switch Club to the Starter plan",
        "admin@localhost left Switch Club",
    ]
