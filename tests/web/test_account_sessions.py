"""Your sessions at /account/sessions: each browser signed in as you (when, from where, on what),
this one marked, and "Sign out everywhere else", which, like a new password, turns every other
session away on its very next request while this one stays."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from litestar.testing import TestClient

from services.models import PlatformRole
from services.models.types import utcnow
from services.settings import Settings
from tests.support import Credentials, chose_own_password, post_form, sign_in, signed_in
from tests.web.portal import add_user, get_with_session, session_id, stored_sessions
from tests.web.test_provisioning_pages import text_of

SESSIONS = "/account/sessions"
FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def signed_in_elsewhere(client: TestClient[Any], person: Credentials) -> str:
    """The id of a session `person` signs in to (another browser, say); `client` then signs in
    afresh, as this browser."""
    client.cookies.clear()
    sign_in(client, person)
    elsewhere = session_id(client)
    assert elsewhere is not None
    signed_in(client, person)
    return elsewhere


def still_in(client: TestClient[Any], session: str) -> bool:
    """Whether the session is let in (a landlord page answers), or sent to sign in."""
    answer = get_with_session(client, "/tenants", session)
    if answer.status_code == 200:
        return True
    assert (answer.status_code, answer.headers["location"]) == (302, "/login?next=/tenants"), answer.text
    return False


def test_a_session_keeps_when_from_where_and_on_what_it_was_signed_in(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    client.headers["user-agent"] = FIREFOX_ON_LINUX
    before = utcnow()
    sign_in(client, superadmin)

    stored = json.loads(stored_sessions(settings)[session_id(client) or ""])
    signed_in_at = datetime.fromisoformat(stored["signed_in_at"])
    assert signed_in_at.utcoffset() == timedelta(0) and before <= signed_in_at <= utcnow()
    assert (stored["signed_in_from"], stored["signed_in_on"]) == ("testclient", "Firefox on Linux")
    page = client.get(SESSIONS).text
    this_one = text_of(page.split('id="this-session"')[1].split("</tr>")[0])
    assert f"{signed_in_at:%Y-%m-%d %H:%M} UTC" in this_one
    assert "testclient" in this_one and "Firefox on Linux" in this_one and "this session" in this_one


def test_your_sessions_page_lists_your_live_sessions_and_no_one_elses(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    signed_in(client, lee)
    elsewhere = signed_in_elsewhere(client, superadmin)

    page = client.get(SESSIONS).text

    assert page.count("<tr") == 3, "a header and your two sessions, not lee's"
    assert page.count('id="this-session"') == 1
    assert "Sign out everywhere else" in page and "the other session" in page
    for session in stored_sessions(settings):
        assert session not in page, "a session id is a key: never shown"
    assert elsewhere != session_id(client)


def test_signing_out_everywhere_else_turns_every_other_session_away_on_its_next_request(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    elsewhere = signed_in_elsewhere(client, superadmin)
    assert still_in(client, elsewhere), "the other session is in, and its user remembered"

    ended = post_form(client, f"{SESSIONS}/sign-out-elsewhere", {}, follow_redirects=False)

    assert (ended.status_code, ended.headers["location"]) == (303, f"{SESSIONS}?ended=true")
    assert not still_in(client, elsewhere)
    assert client.get("/tenants").status_code == 200, "this session stays"
    page = client.get(ended.headers["location"]).text
    assert 'id="signed-out-elsewhere"' in page and 'id="no-other-sessions"' in page
    assert page.count('id="this-session"') == 1
    signed_in(client, superadmin)
    assert client.get("/tenants").status_code == 200, "signing in again is a new session, let in"


def test_a_new_password_signs_out_every_other_session_and_keeps_this_one(
    client: TestClient[Any], settings: Settings
) -> None:
    lee = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    elsewhere = signed_in_elsewhere(client, lee)
    assert still_in(client, elsewhere)

    chose_own_password(client, lee, "/account?changed=1")

    assert not still_in(client, elsewhere)
    assert client.get("/tenants").status_code == 200
    assert "Every other session of yours is signed out." in client.get("/account?changed=1").text
