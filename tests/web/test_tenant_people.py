"""People and units in the tenant portal, as a tenant's admin works them in a browser: inviting
someone (whose password is shown once and who then lands in their units), the plan's limit, roles,
deactivation (which shuts even an open session out), and the unit tree changed in place, with
HTMX and without. Members are refused every change."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Plan, Tenant, User
from services.models.tenant import TenantUser
from services.settings import Settings
from tests.support import Credentials, chose_own_password, post_form, run_db, sign_in, signed_in
from tests.web.portal import (
    HTMX,
    add_tenant,
    add_token,
    add_user,
    assert_no_trace,
    count_users,
    find_user,
    get_with_session,
    is_partial,
    portal,
    session_id,
)
from tests.web.tenant_world import (
    add_admin,
    add_member,
    add_rows,
    add_units,
    disable_module,
    in_tenant,
    provision,
)

SLUG = "garden-club"
PEOPLE, UNITS = f"/t/{SLUG}/people", f"/t/{SLUG}/units"
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def account_id(settings: Settings, email: str) -> int:
    async def work(session: AsyncSession) -> int:
        found = await session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return found

    return run_db(settings, work)


def audit_actions(settings: Settings) -> list[str]:
    async def work(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))

    return run_db(settings, work)


def limit_people(settings: Settings, max_users: int) -> None:
    async def work(session: AsyncSession) -> None:
        session.add(
            Plan(
                key="small",
                name="Small",
                modules=None,
                max_modules=None,
                max_users=max_users,
                max_storage_mb=None,
            )
        )
        await session.flush()
        await session.execute(update(Tenant).where(Tenant.slug == SLUG).values(plan_key="small"))

    run_db(settings, work)


def field_error(page: str, field: str) -> str:
    """The message shown next to a field of the page's form."""
    found = re.search(rf'id="{field}-error"[^>]*>([^<]+)<', page)
    assert found, f"no error next to {field}"
    return found.group(1)


@ON_SQLITE
def test_an_invited_person_gets_a_password_shown_once_and_lands_in_their_units(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None), ("Harbour", "North"), ("South", None)])
    add_rows(
        settings,
        SLUG,
        "groups",
        [
            {"name": "Harbour rowers", "unit_id": units["Harbour"]},
            {"name": "South singers", "unit_id": units["South"]},
        ],
    )
    admin = add_admin(settings, SLUG, "admin@garden.example")
    with portal(settings) as client:
        signed_in(client, admin)
        invited = post_form(
            client,
            PEOPLE,
            {
                "email": "Rose@Garden.example",
                "display_name": "Rose",
                "role": "tenant_member",
                "unit_ids": str(units["North"]),
            },
        )
        assert invited.status_code == 201, invited.text
        password = re.search(r'id="temporary-password">([^<]+)<', invited.text)
        assert password and "shown only this once" in invited.text
        assert "Unless they already have a Tenantry account" in invited.text
        listed = client.get(PEOPLE)
        assert "rose@garden.example" in listed.text and password.group(1) not in listed.text
        rose_row = listed.text.split(f'id="person-{account_id(settings, "rose@garden.example")}"')[1].split(
            "</tr>"
        )[0]
        assert "North" in rose_row and "member" in rose_row and "active" in rose_row

        rose = Credentials("rose@garden.example", password.group(1))
        signed_in(client, rose)
        first = client.get(f"/t/{SLUG}/data/groups", follow_redirects=False)
        assert first.headers["location"] == f"/account?next=/t/{SLUG}/data/groups", (
            "the password someone else was shown is replaced before anything else"
        )
        chose_own_password(client, rose, f"/t/{SLUG}/data/groups")
        page = client.get(f"/t/{SLUG}/data/groups")
        assert "Harbour rowers" in page.text and "South singers" not in page.text
        assert client.get(PEOPLE).status_code == 403
        assert 'id="nav-people"' not in client.get(f"/t/{SLUG}/").text
    assert "person.invite" in audit_actions(settings)


@ON_SQLITE
def test_invitation_mistakes_are_shown_on_their_fields_and_the_plan_limit_is_kept(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example")
    limit_people(settings, 2)
    with portal(settings) as client:
        signed_in(client, admin)
        refused = post_form(client, PEOPLE, {"email": "member@garden.example", "role": "owner"})
        assert refused.status_code == 422
        assert_no_trace(refused.text)
        assert (
            field_error(refused.text, "email")
            == "member@garden.example is already one of Garden Club&#39;s people."
        )
        assert "Choose a role" in refused.text
        assert "allows 2 active people, and 2 are active" in refused.text
        assert 'value="member@garden.example"' in refused.text, "what was typed is kept"
        full = post_form(client, PEOPLE, {"email": "new@garden.example", "role": "tenant_member"})
        assert full.status_code == 422 and "Deactivate someone first" in full.text
        assert "new@garden.example" not in client.get(PEOPLE).text.split('id="invite"')[0]


@ON_SQLITE
def test_the_last_admin_stays_one_and_a_role_change_takes_effect_at_once(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    member = add_member(settings, SLUG, "member@garden.example")
    admin_id, member_id = account_id(settings, admin.email), account_id(settings, member.email)
    with portal(settings) as client:
        signed_in(client, admin)
        refused = post_form(client, f"{PEOPLE}/{admin_id}/role", {"role": "tenant_member"})
        assert refused.status_code == 422
        assert "last active admin of Garden Club" in field_error(refused.text, "role")

        promoted = post_form(
            client, f"{PEOPLE}/{member_id}/role", {"role": "tenant_admin"}, follow_redirects=False
        )
        assert promoted.status_code == 303
        assert client.get(f"{PEOPLE}/{member_id}").text.count('value="tenant_admin" checked') == 1

        signed_in(client, member)
        assert client.get(PEOPLE).status_code == 200, "the new admin manages people on their next request"
        demoted = post_form(
            client, f"{PEOPLE}/{admin_id}/role", {"role": "tenant_member"}, follow_redirects=False
        )
        assert demoted.status_code == 303
        signed_in(client, admin)
        assert client.get(PEOPLE).status_code == 403
    assert audit_actions(settings).count("person.role") == 2


@ON_SQLITE
def test_a_deactivated_person_is_shut_out_even_from_an_open_session_until_reactivated(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None)])
    admin = add_admin(settings, SLUG, "admin@garden.example")
    member = add_member(settings, SLUG, "member@garden.example", unit_ids=[units["North"]])
    member_id = account_id(settings, member.email)
    with portal(settings) as client:
        signed_in(client, member)
        open_session = session_id(client)
        assert open_session and get_with_session(client, f"/t/{SLUG}/", open_session).status_code == 200

        signed_in(client, admin)
        confirmation = client.get(f"{PEOPLE}/{member_id}/deactivate")
        assert confirmation.status_code == 200
        assert "will no longer be able to enter Garden Club" in confirmation.text
        own = post_form(client, f"{PEOPLE}/{account_id(settings, admin.email)}/deactivate", {})
        assert own.status_code == 422 and "You cannot deactivate yourself" in own.text
        done = post_form(client, f"{PEOPLE}/{member_id}/deactivate", {}, follow_redirects=False)
        assert done.status_code == 303
        page = client.get(f"{PEOPLE}/{member_id}").text
        assert 'id="person-state">deactivated' in page and "Reactivate" in page

        shut_out = get_with_session(client, f"/t/{SLUG}/data/groups", open_session)
        assert shut_out.status_code == 404
        assert_no_trace(shut_out.text)

        back = post_form(client, f"{PEOPLE}/{member_id}/reactivate", {}, follow_redirects=False)
        assert back.status_code == 303
        assert get_with_session(client, f"/t/{SLUG}/", open_session).status_code == 200
    assert {"person.deactivate", "person.reactivate"} <= set(audit_actions(settings))


@ON_SQLITE
def test_members_may_not_manage_people(settings: Settings, superadmin: Credentials) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    member = add_member(settings, SLUG, "member@garden.example")
    admin_id = account_id(settings, admin.email)
    with portal(settings) as client:
        signed_in(client, member)
        assert client.get(PEOPLE).status_code == 403
        assert post_form(client, PEOPLE, {"email": "sneaky@garden.example"}).status_code == 403
        assert post_form(client, f"{PEOPLE}/{admin_id}/deactivate", {}).status_code == 403
    assert run_db(settings, lambda s: s.scalar(select(func.count()).select_from(User))) == 3


def _tree_order(html: str) -> list[str]:
    """The units' names in the order the tree shows them, each with its depth."""
    rows = re.findall(
        r'<tr id="unit-\d+">\s*<td style="padding-left: calc\(0.5rem \+ (\d+) \* 1.25rem\)">([^<]+)</td>',
        html,
    )
    return [f"{int(depth) * '-'}{name}" for depth, name in rows]


def test_the_unit_tree_is_changed_in_place_and_a_members_scope_follows_a_move(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(
        settings, SLUG, [("North", None), ("Harbour", "North"), ("Quay", "Harbour"), ("South", None)]
    )
    add_rows(settings, SLUG, "groups", [{"name": "Quay rowers", "unit_id": units["Quay"]}])
    admin = add_admin(settings, SLUG, "admin@garden.example")
    south = add_member(settings, SLUG, "south@garden.example", unit_ids=[units["South"]])
    with portal(settings) as client:
        signed_in(client, admin)
        assert _tree_order(client.get(UNITS).text) == [
            "Garden Club",
            "-North",
            "--Harbour",
            "---Quay",
            "-South",
        ]

        inside = post_form(
            client, f"{UNITS}/{units['North']}/move", {"new_parent_id": str(units["Quay"])}, headers=HTMX
        )
        assert inside.status_code == 422 and is_partial(inside.text)
        assert "North cannot move under Quay, which is inside it." in inside.text

        moved = post_form(
            client, f"{UNITS}/{units['Harbour']}/move", {"new_parent_id": str(units["South"])}, headers=HTMX
        )
        assert moved.status_code == 200 and is_partial(moved.text) and 'id="unit-tree"' in moved.text
        assert "Moved Harbour into South." in moved.text
        assert _tree_order(moved.text) == ["Garden Club", "-North", "-South", "--Harbour", "---Quay"]

        not_empty = post_form(client, f"{UNITS}/{units['South']}/delete", {})
        assert not_empty.status_code == 422 and "<html" in not_empty.text
        assert (
            "South still has 1 unit inside it, 1 person assigned to it: move or remove them first."
            in not_empty.text
        )
        busy = post_form(client, f"{UNITS}/{units['Quay']}/delete", {}, headers=HTMX)
        assert busy.status_code == 422 and "Quay still has 1 row in groups" in busy.text
        root = post_form(client, f"{UNITS}/{units['root']}/delete", {})
        assert root.status_code == 422 and "top of the tree" in root.text

        deleted = post_form(client, f"{UNITS}/{units['North']}/delete", {}, follow_redirects=False)
        assert deleted.status_code == 303 and deleted.headers["location"] == UNITS
        assert _tree_order(client.get(UNITS).text) == ["Garden Club", "-South", "--Harbour", "---Quay"]

        added = post_form(
            client,
            UNITS,
            {"parent_id": str(units["Quay"]), "name": "Slipway", "inline": "true"},
            headers=HTMX,
        )
        assert "---Quay" in _tree_order(added.text) and "----Slipway" in _tree_order(added.text)
        clash = post_form(
            client,
            UNITS,
            {"parent_id": str(units["Quay"]), "name": "Slipway", "inline": "true"},
            headers=HTMX,
        )
        assert clash.status_code == 422
        row = clash.text.split(f'id="unit-{units["Quay"]}"')[1].split("</tr>")[0]
        assert "already a unit called &#39;Slipway&#39; in Quay" in row

        signed_in(client, south)
        assert "Quay rowers" in client.get(f"/t/{SLUG}/data/groups").text, "South's member sees what moved in"
        assert post_form(client, f"{UNITS}/{units['Harbour']}/delete", {}).status_code == 403
        assert "Delete" not in client.get(UNITS).text
    assert {"unit.move", "unit.delete", "unit.create"} <= set(audit_actions(settings))


@ON_SQLITE
def test_a_unit_holding_kept_rows_of_a_disabled_module_is_not_deleted(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG, modules=["events"])
    units = add_units(settings, SLUG, [("Harbour", None)])
    add_rows(settings, SLUG, "venues", [{"name": "Boathouse", "unit_id": units["Harbour"]}])
    disable_module(settings, SLUG, "events", keep_data=True)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    with portal(settings) as client:
        signed_in(client, admin)
        refused = post_form(client, f"{UNITS}/{units['Harbour']}/delete", {})
        assert refused.status_code == 422
        assert "1 row in venues" in refused.text, "the hidden rows would lose their unit"
        assert "Harbour" in client.get(UNITS).text


@ON_SQLITE
def test_the_tenant_api_lists_people_and_answers_an_invitation_with_its_password(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None)])
    add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example")
    token = add_token(settings, "admin@garden.example", SLUG)
    admin_token = {"Authorization": f"Bearer {token}"}
    member_token = {"Authorization": f"Bearer {add_token(settings, 'member@garden.example', SLUG)}"}
    with portal(settings) as client:
        api = "/api/v1/tenant/people"
        listed = client.get(api, headers=admin_token)
        assert listed.status_code == 200
        assert [(p["email"], p["role"], p["active"]) for p in listed.json()] == [
            ("admin@garden.example", "tenant_admin", True),
            ("member@garden.example", "tenant_member", True),
        ]
        invited = client.post(
            api, json={"email": "rose@garden.example", "unit_ids": [units["North"]]}, headers=admin_token
        )
        assert invited.status_code == 201, invited.text
        answer = invited.json()
        assert (
            answer["person"]["units"] == [{"id": units["North"], "name": "North"}]
            and len(answer["password"]) >= 12
        )
        assert answer["password"] not in client.get(api, headers=admin_token).text
        (invitation,) = invitation_details(settings)
        assert invitation["role"] == "tenant_member" and token.startswith(invitation["token"]), (
            "the trail names the API token that invited, as for every other API action"
        )

        refused = client.post(
            api, json={"email": "rose@garden.example", "role": "owner"}, headers=admin_token
        )
        assert refused.status_code == 422
        assert {error["field"] for error in refused.json()["errors"]} == {"email", "role"}
        assert client.get(api, headers=member_token).status_code == 403
        assert client.post(api, json={"email": "x@garden.example"}, headers=member_token).status_code == 403


def invitation_details(settings: Settings) -> list[dict[str, Any]]:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        entries = await session.scalars(select(AuditEntry).where(AuditEntry.action == "person.invite"))
        return [entry.detail for entry in entries]

    return run_db(settings, work)


def refuse_memberships(settings: Settings, *, refusing: bool) -> None:
    """A trigger in the landlord database that refuses every new membership: the invitation's
    second write fails for real, after its first (the tenant's store) has committed."""
    postgres = settings.database_url.startswith("postgresql")
    if not refusing:
        statements = [f"DROP TRIGGER refuse_memberships{' ON memberships' if postgres else ''}"]
    elif postgres:
        statements = [
            "CREATE FUNCTION refuse_membership() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'memberships refused'; END $$",
            "CREATE TRIGGER refuse_memberships BEFORE INSERT ON memberships "
            "FOR EACH ROW EXECUTE FUNCTION refuse_membership()",
        ]
    else:
        statements = [
            "CREATE TRIGGER refuse_memberships BEFORE INSERT ON memberships "
            "BEGIN SELECT RAISE(ABORT, 'memberships refused'); END"
        ]

    async def work(session: AsyncSession) -> None:
        for statement in statements:
            await session.execute(text(statement))

    run_db(settings, work)


def profiles_of(settings: Settings, email: str) -> int:
    async def work(_landlord: Any, data: AsyncSession, _tenant: Any) -> int:
        return (
            await data.scalar(select(func.count()).select_from(TenantUser).where(TenantUser.email == email))
            or 0
        )

    return in_tenant(settings, SLUG, work)


def test_an_invitation_killed_between_its_two_writes_lets_nobody_in_and_is_made_again_whole(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None), ("South", None)])
    add_rows(
        settings,
        SLUG,
        "groups",
        [
            {"name": "North walkers", "unit_id": units["North"]},
            {"name": "South singers", "unit_id": units["South"]},
        ],
    )
    admin = add_admin(settings, SLUG, "admin@garden.example")
    invitation = {"email": "rose@garden.example", "display_name": "Rose", "role": "tenant_member"}
    with portal(settings) as client:
        signed_in(client, admin)
        refuse_memberships(settings, refusing=True)
        killed = post_form(client, PEOPLE, {**invitation, "unit_ids": str(units["North"])})
        refuse_memberships(settings, refusing=False)

        assert killed.status_code == 500
        assert_no_trace(killed.text)
        assert profiles_of(settings, "rose@garden.example") == 1, "the store's write had committed"
        assert find_user(settings, "rose@garden.example") is None, "the landlord's had not"
        assert "rose@garden.example" not in client.get(PEOPLE).text, "half an invitation is nobody"

        invited = post_form(client, PEOPLE, {**invitation, "unit_ids": str(units["South"])})
        assert invited.status_code == 201, invited.text
        password = re.search(r'id="temporary-password">([^<]+)<', invited.text)
        assert password
        rose_id = account_id(settings, "rose@garden.example")
        row = client.get(PEOPLE).text.split(f'id="person-{rose_id}"')[1].split("</tr>")[0]
        assert "Rose" in row and "South" in row and "North" not in row and "active" in row
        assert profiles_of(settings, "rose@garden.example") == 1, (
            "the second invitation took the first's place"
        )

        rose = Credentials("rose@garden.example", password.group(1))
        chose_own_password(signed_in(client, rose), rose)
        groups = client.get(f"/t/{SLUG}/data/groups").text
        assert "South singers" in groups and "North walkers" not in groups


def test_inviting_an_email_with_an_account_elsewhere_adds_a_membership_answered_as_a_new_one(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None)])
    add_admin(settings, SLUG, "admin@garden.example")
    add_tenant(settings, "heron-club", "Heron Club")
    rose = add_user(settings, "rose@garden.example", "tenant_member", tenant_slug="heron-club")
    token = {"Authorization": f"Bearer {add_token(settings, 'admin@garden.example', SLUG)}"}
    with portal(settings) as client:
        api = "/api/v1/tenant/people"
        existing = client.post(api, json={"email": rose.email, "unit_ids": [units["North"]]}, headers=token)
        new = client.post(
            api, json={"email": "lily@garden.example", "unit_ids": [units["North"]]}, headers=token
        )

        assert (existing.status_code, new.status_code) == (201, 201), existing.text
        answers = [existing.json(), new.json()]
        assert [sorted(answer) for answer in answers] == [["password", "person"]] * 2
        assert [sorted(answer["person"]) for answer in answers] == [sorted(answers[1]["person"])] * 2
        assert len(answers[0]["password"]) == len(answers[1]["password"])
        assert answers[0]["person"]["units"] == [{"id": units["North"], "name": "North"}]

        shown = Credentials(rose.email, answers[0]["password"])
        assert sign_in(client, shown).status_code == 422, "the account keeps its own password"
        signed_in(client, rose)
        chooser = client.get("/").text
        assert "Heron Club" in chooser and "Garden Club" in chooser, "one account, both tenants"
        assert client.get(f"/t/{SLUG}/").status_code == 200
    assert count_users(settings) == 4, "no second account for rose"
