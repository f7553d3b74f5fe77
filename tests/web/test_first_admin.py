"""A tenant's first admin: named on the new-tenant form or through the API (a new email gets an
account and a password shown once), let in by the provisioning job, and replacing that password
before anything else at their first sign-in; a tenant without an admin offers to invite one, once.
And anyone's own password, changed on their account page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.passwords import verify_password
from services.models import AuditEntry, Membership, PlatformRole, Tenant, TenantRole, User
from services.settings import Settings
from tests.support import Credentials, chose_own_password, post_form, run_db, sign_in, signed_in
from tests.web.portal import HTMX, add_tenant, add_token, add_user, assert_no_trace, find_user, portal
from tests.web.test_provisioning_pages import VALID, latest_job, step_states, submit, text_of
from tests.workers.support import drop_tenant_databases, wait_until_active, wait_until_finished

ANNA = {"admin_email": "Anna@Owls.example", "admin_name": "Anna de Vries"}


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


@pytest.fixture
def other_client(settings: Settings) -> Iterator[TestClient[Any]]:
    """A second browser, on a web process of its own (an app's database connections belong to
    the event loop of the client that started it): the person the landlord gave a password to."""
    with portal(settings) as client:
        yield client


def shown_password(page: str) -> str:
    found = re.search(r'id="first-admin-password">([^<]+)<', page)
    assert found, "the password is on the answer"
    assert "shown only this once" in page
    return found.group(1)


def admins_row(page: str, email: str) -> str:
    return page.split(f'data-admin="{email}"')[1].split("</tr>")[0]


def memberships(settings: Settings, email: str) -> list[tuple[str, str]]:
    async def work(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.execute(
            select(Tenant.slug, Membership.role)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email)
        )
        return [(slug, role) for slug, role in rows]

    return run_db(settings, work)


def trail(settings: Settings, action: str) -> list[tuple[str | None, dict[str, Any] | None]]:
    async def work(session: AsyncSession) -> list[tuple[str | None, dict[str, Any] | None]]:
        entries = await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        return [(entry.target, entry.detail) for entry in entries]

    return run_db(settings, work)


def count_users(settings: Settings) -> int | None:
    return run_db(settings, lambda session: session.scalar(select(func.count()).select_from(User)))


def test_a_tenant_created_with_its_first_admin_lets_them_in_once_they_choose_their_own_password(
    superadmin_client: TestClient[Any], other_client: TestClient[Any], settings: Settings
) -> None:
    created = submit(superadmin_client, {**VALID, **ANNA})

    assert created.status_code == 201, created.text
    given = Credentials("anna@owls.example", shown_password(created.text))
    assert 'href="/tenants/save-the-owls"' in created.text
    assert find_user(settings, "anna@owls.example") is not None, "the account exists at once"
    requested = [detail or {} for _, detail in trail(settings, "tenant.request")]
    assert [detail.get("first_admin") for detail in requested] == ["anna@owls.example"], "on the trail"

    wait_until_active(settings, "save-the-owls")
    job = wait_until_finished(settings, latest_job(settings, "save-the-owls").id)
    page = superadmin_client.get("/tenants/save-the-owls").text
    assert step_states(page)["first admin"] == "succeeded"
    assert "anna@owls.example is its admin" in page
    assert memberships(settings, "anna@owls.example") == [("save-the-owls", TenantRole.TENANT_ADMIN)]
    assert "not yet" in admins_row(page, "anna@owls.example"), "the landlord sees they have not signed in"
    assert given.password not in page, "the password is shown once, on the answer to the form"
    assert job.status == "succeeded"

    # Anna signs in with what she was given: she chooses her own password before anything else.
    signed_in_answer = sign_in(other_client, given)
    assert signed_in_answer.headers["location"] == "/account?next=/"
    portal = other_client.get("/t/save-the-owls/", follow_redirects=False)
    assert (portal.status_code, portal.headers["location"]) == (303, "/account?next=/t/save-the-owls/")
    fragment = other_client.get("/t/save-the-owls/people", headers=HTMX, follow_redirects=False)
    assert fragment.headers["hx-redirect"] == "/account?next=/t/save-the-owls/people"
    account = other_client.get("/account?next=/t/save-the-owls/")
    assert 'id="choose-password"' in account.text and 'value="/t/save-the-owls/"' in account.text

    wrong = post_form(
        other_client,
        "/account/password",
        {"current_password": "not it", "new_password": "short", "repeated_password": "other"},
    )
    assert wrong.status_code == 422
    assert "That is not your current password." in wrong.text
    assert "at least 12 characters" in text_of(wrong.text) and "The two new passwords differ" in wrong.text
    assert_no_trace(wrong.text)
    same = post_form(
        other_client,
        "/account/password",
        {
            "current_password": given.password,
            "new_password": given.password,
            "repeated_password": given.password,
        },
    )
    assert same.status_code == 422 and "other than the one you were given" in text_of(same.text)

    own = chose_own_password(other_client, given, "/t/save-the-owls/")
    assert other_client.get("/t/save-the-owls/").status_code == 200, "then she lands in her tenant"
    assert other_client.get("/t/save-the-owls/people").status_code == 200, "as its admin"
    anna = find_user(settings, "anna@owls.example")
    assert anna is not None and not anna.must_change_password
    assert verify_password(anna.password_hash, own.password)
    assert sign_in(other_client, given).status_code == 422, "the given password no longer opens the door"
    assert trail(settings, "account.password_change") == [("anna@owls.example", {})]
    assert "last on" in admins_row(superadmin_client.get("/tenants/save-the-owls").text, "anna@owls.example")


def test_the_first_admins_mistakes_are_shown_with_the_others_and_nothing_is_created(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    users_before = count_users(settings)

    refused = submit(
        superadmin_client, {**VALID, "slug": "X", "admin_email": "anna at owls", "admin_name": "A" * 201}
    )
    assert refused.status_code == 422
    text = text_of(refused.text)
    assert "Enter a valid email address" in text and "A name is at most 200 characters." in text
    assert 'name="admin_email" type="email" value="anna at owls"' in refused.text, "what was typed is kept"
    staff = submit(superadmin_client, {**VALID, "admin_email": "lee@landlord.example"}, htmx=True)
    assert staff.status_code == 422 and "on the platform's staff" in text_of(staff.text)

    assert count_users(settings) == users_before, "no account is made for a refused tenant"
    assert run_db(settings, lambda session: session.scalar(select(func.count()).select_from(Tenant))) == 0


def test_a_tenant_without_an_admin_offers_to_invite_the_first_and_only_the_first(
    superadmin_client: TestClient[Any], other_client: TestClient[Any], settings: Settings
) -> None:
    created = submit(superadmin_client, VALID)
    assert created.status_code == 303, "without a first admin, straight to the tenant's page"
    wait_until_active(settings, "save-the-owls")
    page = superadmin_client.get("/tenants/save-the-owls").text
    assert 'id="no-admin"' in page and "Invite the first admin" in page

    wrong = post_form(superadmin_client, "/tenants/save-the-owls/first-admin", {"admin_email": "nobody"})
    assert wrong.status_code == 422 and "Enter a valid email address" in wrong.text
    assert 'id="no-admin"' in wrong.text

    invited = post_form(superadmin_client, "/tenants/save-the-owls/first-admin", ANNA, follow_redirects=False)
    assert invited.status_code == 201, invited.text
    given = Credentials("anna@owls.example", shown_password(invited.text))
    assert [target for target, _ in trail(settings, "person.first_admin")] == ["anna@owls.example"]
    page = superadmin_client.get("/tenants/save-the-owls").text
    assert 'id="no-admin"' not in page and 'data-admin="anna@owls.example"' in page

    again = post_form(
        superadmin_client, "/tenants/save-the-owls/first-admin", {"admin_email": "bo@owls.example"}
    )
    assert again.status_code == 422 and "has an admin already" in text_of(again.text)
    assert find_user(settings, "bo@owls.example") is None

    signed_in(other_client, given)
    chose_own_password(other_client, given, "/t/save-the-owls/people")
    people = other_client.get("/t/save-the-owls/people")
    assert people.status_code == 200 and "Anna de Vries" in people.text, "her profile is in the store"


def test_the_api_names_a_first_admin_and_an_existing_account_keeps_its_own_password(
    client: TestClient[Any], settings: Settings
) -> None:
    add_user(settings, "ops@landlord.example", PlatformRole.LANDLORD_ADMIN)
    token = {"Authorization": f"Bearer {add_token(settings, 'ops@landlord.example')}"}
    add_tenant(settings, "reed-choir")
    member = add_user(settings, "bo@reed.example", TenantRole.TENANT_MEMBER, "reed-choir")

    new = client.post("/api/v1/tenants", json={**VALID, **ANNA}, headers=token)
    assert new.status_code == 202, new.text
    assert new.json()["first_admin"]["email"] == "anna@owls.example"
    given = Credentials("anna@owls.example", new.json()["first_admin"]["password"])
    assert len(given.password) >= 12
    existing = client.post(
        "/api/v1/tenants",
        json={**VALID, "slug": "save-the-bats", "name": "Save the Bats", "admin_email": member.email},
        headers=token,
    )
    assert existing.status_code == 202, existing.text
    assert existing.json()["first_admin"] == {"email": "bo@reed.example", "password": None}
    refused = client.post(
        "/api/v1/tenants", json={**VALID, "slug": "owls-2", "admin_email": "x"}, headers=token
    )
    assert refused.status_code == 422 and "Enter a valid email address" in refused.text

    wait_until_active(settings, "save-the-owls")
    wait_until_active(settings, "save-the-bats")
    assert sorted(memberships(settings, "bo@reed.example")) == [
        ("reed-choir", TenantRole.TENANT_MEMBER),
        ("save-the-bats", TenantRole.TENANT_ADMIN),
    ]
    assert sign_in(client, member).headers["location"] == "/", "their own password, nothing to change"
    assert sign_in(client, given).headers["location"] == "/account?next=/"


def test_anyone_changes_their_own_password_from_their_account_page(
    client: TestClient[Any], settings: Settings
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    signed_in(client, lee)
    page = client.get("/")
    assert 'href="/account"' in page.text, "the top bar leads to your account"
    account = client.get("/account")
    assert account.status_code == 200 and 'id="choose-password"' not in account.text

    own = chose_own_password(client, lee, "/account?changed=1")
    assert 'id="password-changed"' in client.get("/account?changed=1").text
    assert sign_in(client, own).status_code == 302
    assert sign_in(client, lee).status_code == 422
