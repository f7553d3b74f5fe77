"""Password resets: the platform's staff reset anyone's from the users page (only a superadmin a
superadmin's), a tenant's admin the password of one of its people whose account is the tenant's
alone. The new password is shown once; the account then chooses its own before anything else, and
every session it had open is signed out. Each reset is on the audit trail."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Membership, PlatformRole, TenantRole
from services.settings import Settings
from tests.support import Credentials, post_form, run_db, sign_in, signed_in
from tests.web.accounts import shown_once, trail
from tests.web.portal import add_tenant, add_user, find_user, get_with_session, session_id
from tests.web.tenant_world import (
    add_admin,
    add_member,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)

SLUG = "garden-club"
PEOPLE = f"/t/{SLUG}/people"
RESET = "account.password_reset"


def account_id(settings: Settings, email: str) -> int:
    account = find_user(settings, email)
    assert account is not None
    return account.id


def open_session(client: TestClient[Any], person: Credentials) -> str:
    """A session `person` has open in another browser; `client` is left signed out."""
    client.cookies.clear()
    assert sign_in(client, person).status_code == 302
    opened = session_id(client)
    assert opened is not None
    client.cookies.clear()
    return opened


def is_let_in(client: TestClient[Any], session: str, path: str) -> bool:
    status: int = get_with_session(client, path, session).status_code
    return status == 200


def must_choose_own_password(client: TestClient[Any], person: Credentials) -> bool:
    """Signing in with `person`'s credentials works, and leads to choosing their own password."""
    client.cookies.clear()
    answer = sign_in(client, person)
    client.cookies.clear()
    going_to: tuple[int, str | None] = (answer.status_code, answer.headers.get("location"))
    return going_to == (302, "/account?next=/")


def signs_in(client: TestClient[Any], person: Credentials) -> bool:
    client.cookies.clear()
    status: int = sign_in(client, person).status_code
    client.cookies.clear()
    return status == 302


def join(settings: Settings, email: str, tenant_id: int) -> None:
    """The account of `email` made a member of another tenant too."""
    user_id = account_id(settings, email)

    async def work(session: AsyncSession) -> None:
        session.add(Membership(user_id=user_id, tenant_id=tenant_id, role=TenantRole.TENANT_MEMBER))

    run_db(settings, work)


# --- From the landlord's users page -----------------------------------------------------------------


def test_a_landlord_admin_resets_the_password_of_someone_found_by_their_email(
    client: TestClient[Any], settings: Settings
) -> None:
    add_tenant(settings, "heron-club", "Heron Club")
    ada = add_user(settings, "ada@heron.example", TenantRole.TENANT_MEMBER, "heron-club")
    adas_session = open_session(client, ada)
    assert is_let_in(client, adas_session, "/account")
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    signed_in(client, lee)

    found = client.get("/users?email=ADA@heron.example")
    assert found.status_code == 200
    assert 'id="found-account"' in found.text and "Heron Club" in found.text
    reset_link = f'href="/users/{account_id(settings, ada.email)}/password-reset"'
    assert reset_link in found.text
    assert (
        "No account has the email nobody@heron.example."
        in client.get("/users?email=nobody@heron.example").text
    )
    confirm = client.get(f"/users/{account_id(settings, ada.email)}/password-reset")
    assert "Reset the password of ada@heron.example?" in confirm.text
    assert "Every session they have open is" in confirm.text

    reset = post_form(client, f"/users/{account_id(settings, ada.email)}/password-reset", {})

    assert reset.status_code == 200, reset.text
    password = shown_once(reset.text, "reset-password")
    assert "This password is shown only this once." in reset.text
    assert not is_let_in(client, adas_session, "/account"), "her open session is signed out"
    assert not signs_in(client, ada), "her old password no longer works"
    assert must_choose_own_password(client, Credentials(ada.email, password))
    [entry] = trail(settings, RESET)
    assert (entry.actor_email, entry.target, entry.tenant_id) == (lee.email, ada.email, None)
    assert password not in str(entry.detail)
    signed_in(client, lee)
    for path in ("/users", f"/users?email={ada.email}", "/audit", "/audit.csv"):
        assert password not in client.get(path).text, path


def test_only_a_superadmin_resets_a_superadmins_password_and_nobody_their_own(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    kim = add_user(settings, "kim@landlord.example", PlatformRole.LANDLORD_ADMIN)
    superadmin_id, lee_id = account_id(settings, superadmin.email), account_id(settings, lee.email)
    signed_in(client, lee)

    staff = client.get("/users").text
    assert f'href="/users/{superadmin_id}/password-reset"' not in staff
    assert f'href="/users/{lee_id}/password-reset"' not in staff, "not their own"
    assert f'href="/users/{account_id(settings, kim.email)}/password-reset"' in staff
    assert "Create landlord admin" not in staff, "adding landlord admins stays a superadmin's"
    shown = client.get(f"/users/{superadmin_id}/password-reset")
    assert "only a superadmin may reset their password" in shown.text and 'id="reset-refused"' in shown.text
    refused = post_form(client, f"/users/{superadmin_id}/password-reset", {})
    own = post_form(client, f"/users/{lee_id}/password-reset", {})

    assert refused.status_code == own.status_code == 409
    assert 'id="reset-password"' not in refused.text + own.text
    assert "This is your own account: change your password on your account page." in own.text
    assert signs_in(client, superadmin) and signs_in(client, lee), "both passwords as they were"
    assert trail(settings, RESET) == []

    signed_in(client, superadmin)
    reset = post_form(client, f"/users/{lee_id}/password-reset", {})
    assert reset.status_code == 200
    assert must_choose_own_password(client, Credentials(lee.email, shown_once(reset.text, "reset-password")))


def test_tenant_people_never_reach_the_landlords_resets(client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "heron-club", "Heron Club")
    ada = add_user(settings, "ada@heron.example", TenantRole.TENANT_ADMIN, "heron-club")
    bo = add_user(settings, "bo@heron.example", TenantRole.TENANT_MEMBER, "heron-club")
    signed_in(client, ada)

    assert client.get("/users").status_code == 403
    assert post_form(client, f"/users/{account_id(settings, bo.email)}/password-reset", {}).status_code == 403
    assert signs_in(client, bo) and trail(settings, RESET) == []


# --- From a person's page in the tenant portal --------------------------------------------------------


def test_a_tenant_admin_resets_the_password_of_someone_whose_account_is_the_tenants_alone(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    tenant_id = provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    rose = add_member(settings, SLUG, "rose@garden.example")
    roses_session = open_session(client, rose)
    assert is_let_in(client, roses_session, f"/t/{SLUG}/")
    rose_page = f"{PEOPLE}/{account_id(settings, rose.email)}"
    signed_in(client, admin)

    page = client.get(rose_page).text
    assert f'href="{rose_page}/password-reset#password"' in page
    confirm = client.get(f"{rose_page}/password-reset").text
    assert f'action="{rose_page}/password-reset"' in confirm and "Reset the password of rose" in confirm

    reset = post_form(client, f"{rose_page}/password-reset", {})

    assert reset.status_code == 200, reset.text
    password = shown_once(reset.text, "reset-password")
    assert "This password is shown only this once." in reset.text
    assert password not in client.get(rose_page).text
    assert not is_let_in(client, roses_session, f"/t/{SLUG}/")
    assert not signs_in(client, rose)
    assert must_choose_own_password(client, Credentials(rose.email, password))
    [entry] = trail(settings, RESET)
    assert (entry.actor_email, entry.target, entry.tenant_id) == (admin.email, rose.email, tenant_id)


def test_a_tenant_admin_may_not_take_over_an_account_others_rely_on(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    rose = add_member(settings, SLUG, "rose@garden.example")
    join(settings, rose.email, add_tenant(settings, "heron-club", "Heron Club").id)
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    add_member(settings, SLUG, lee.email)
    signed_in(client, admin)
    refusals = {
        rose.email: "rose@garden.example also signs in to other organisations with this account",
        lee.email: "lee@landlord.example is also one of the platform&#39;s staff",
        admin.email: "This is your own account: change your password on your account page.",
    }

    for email, refusal in refusals.items():
        person = f"{PEOPLE}/{account_id(settings, email)}"
        shown = client.get(f"{person}/password-reset")
        refused = post_form(client, f"{person}/password-reset", {})

        assert shown.status_code == 200 and refusal in shown.text, email
        assert f'action="{person}/password-reset"' not in shown.text, email
        assert refused.status_code == 409 and refusal in refused.text, email
        assert 'id="reset-password"' not in refused.text, email
    assert "This is you" in client.get(f"{PEOPLE}/{account_id(settings, admin.email)}").text
    assert all(signs_in(client, person) for person in (rose, lee, admin)), "every password as it was"
    assert trail(settings, RESET) == []
