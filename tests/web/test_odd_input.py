"""Odd input gets a clear 4xx, never a 500: ids no column can hold, field values out of their
column's range, malformed JSON, NUL characters and text longer than its column, on SQLite and
PostgreSQL alike. The last test walks the app's route table with generated input (hypothesis)
as the landlord and as a tenant admin, each with a session and with a token.

One world per backend is shared by every test here: a provisioned tenant with rows, people and
tokens, and one app. `TENANTRY_ODD_INPUT_EXAMPLES=<n>` makes the walk n requests long and new
each run (CI's 150 are the same every run).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, fields, is_dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.installation import prepare_landlord
from services.models import User
from tests.support import (
    Credentials,
    app_for,
    csrf_token,
    fresh_postgres_database,
    installation_settings,
    requires_postgres,
    run_db,
    signed_in,
)
from tests.web.portal import BASE_URL, add_token, assert_no_trace
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision
from web.limits import ID_COLUMNS, MAX_JSON_NESTING

SLUG = "odd-club"
EXAMPLES = int(os.environ.get("TENANTRY_ODD_INPUT_EXAMPLES", "150"))
LONG_RUN = "TENANTRY_ODD_INPUT_EXAMPLES" in os.environ
INT4_MAX, INT8_MAX = 2**31 - 1, 2**63 - 1
#: Litestar answers these itself; nothing of ours behind them.
NOT_PROBED = {"OPTIONS", "HEAD"}
WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}
#: Routes that end or rotate the caller's session: the caller signs in again after them.
SESSION_CHANGING = {"/logout", "/switch/exit", "/tenants/{slug:str}/switch", "/login"}


@dataclass(frozen=True)
class Caller:
    name: str
    #: A portal caller signs in with these; an API caller sends a bearer token.
    credentials: Credentials | None = None
    token: str | None = None


@dataclass
class World:
    client: TestClient[Any]
    superadmin: Caller
    tenant_admin: Caller
    landlord_token: Caller
    tenant_token: Caller
    unit: int
    group: int
    member_account: int
    #: The CSRF token and cookies of each portal caller's session, by name.
    sessions: dict[str, tuple[str, dict[str, str]]]

    @property
    def portal_callers(self) -> list[Caller]:
        return [self.superadmin, self.tenant_admin]

    @property
    def api_callers(self) -> list[Caller]:
        return [self.landlord_token, self.tenant_token]

    @property
    def app(self) -> Litestar:
        app: Litestar = self.client.app  # TestClient's app is Any to mypy
        return app

    def sign_in(self, caller: Caller) -> None:
        assert caller.credentials is not None
        signed_in(self.client, caller.credentials)
        self.sessions[caller.name] = (csrf_token(self.client), dict(self.client.cookies.items()))

    def send(
        self,
        caller: Caller | None,
        method: str,
        path: str,
        *,
        fields: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Any:
        """`method path` as `caller` (None: an anonymous visitor). `fields` go as the portal's
        form (with the session's CSRF token) or as the API's JSON; `raw` as they are, with the
        content type the route would take."""
        self.client.cookies.clear()
        headers: dict[str, str] = {}
        body: dict[str, Any] = {}
        api = path.startswith("/api/")
        if caller is not None and caller.token is not None:
            headers["Authorization"] = f"Bearer {caller.token}"
        elif caller is not None:
            token, cookies = self.sessions[caller.name]
            self.client.cookies.update(cookies)
            headers["X-CSRFToken"] = token
        if raw is not None:
            headers["Content-Type"] = "application/json" if api else "application/x-www-form-urlencoded"
            body = {"content": raw}
        elif fields is not None:
            body = {"json": fields} if api else {"data": fields}
        return self.client.request(method, path, headers=headers, follow_redirects=False, **body)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A shared tenant with a unit, a group, an admin and a member; tokens for the landlord and
    the tenant admin; one app. Built once per backend for every test of this module."""
    folder = tmp_path_factory.mktemp("odd-input")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{folder / 'landlord.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database())
        settings = installation_settings(folder / "data", url)
        seed = asyncio.run(prepare_landlord(settings))
        assert seed is not None
        superadmin = Credentials(seed.user.email, seed.password)
        provision(settings, SLUG, isolation="shared", modules=["events", "social_media"])
        unit = add_units(settings, SLUG, [("Riverside", None)])["Riverside"]
        group = add_rows(settings, SLUG, "groups", [{"name": "Rowers", "unit_id": unit}])[0]
        admin = add_admin(settings, SLUG, "admin@odd.example")
        member = add_member(settings, SLUG, "member@odd.example", unit_ids=[unit])

        async def account_of(session: AsyncSession) -> int:
            return (await session.scalar(select(User.id).where(User.email == member.email))) or 0

        built = World(
            stack.enter_context(TestClient(stack.enter_context(app_for(settings)), base_url=BASE_URL)),
            Caller("superadmin", credentials=superadmin),
            Caller("tenant admin", credentials=admin),
            Caller("landlord token", token=add_token(settings, superadmin.email)),
            Caller("tenant token", token=add_token(settings, admin.email, SLUG)),
            unit,
            group,
            run_db(settings, account_of),
            {},
        )
        for caller in built.portal_callers:
            built.sign_in(caller)
        yield built


def _detail(response: Any) -> str:
    return str(response.json().get("detail", ""))


# --- Integers out of range ----------------------------------------------------------------------


def test_every_integer_path_parameter_says_which_column_it_names(world: World) -> None:
    """A new route with an id in its path is held to its column's range from the start."""
    named = {name for route in world.app.routes for name in re.findall(r"{(\w+):int}", route.path)}
    assert named - set(ID_COLUMNS) == set(), "say in web.limits.ID_COLUMNS which column each names"


def _owner(world: World, path: str) -> Caller:
    """Who may use the route at `path`: a tenant's routes are its admin's, the rest the landlord's."""
    if path.startswith("/api/"):
        return world.tenant_token if path.startswith("/api/v1/tenant/") else world.landlord_token
    return world.tenant_admin if path.startswith("/t/") else world.superadmin


@pytest.mark.parametrize("beyond", [INT4_MAX + 1, INT8_MAX + 1, 2**65, -(2**31) - 1, -(2**70)])
def test_an_id_no_column_can_hold_is_not_found_on_every_route(world: World, beyond: int) -> None:
    """Every route with an integer path parameter, asked by who may use it: an id beyond its
    column's range cannot name a row, so it is "not found", for the API and the portal alike."""
    probed = 0
    for route in world.app.routes:
        if ":int}" not in route.path:
            continue
        path = re.sub(r"{\w+:int}", str(beyond), route.path)
        path = path.replace("{slug:str}", SLUG).replace("{table:str}", "groups")
        caller = _owner(world, path)
        for method in sorted(route.methods - NOT_PROBED):
            response = world.send(caller, method, path, fields={} if method in WITH_BODY else None)
            assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
            probed += 1
    assert probed >= 29


def test_the_last_id_a_column_holds_is_looked_up_as_any_other(world: World) -> None:
    assert world.send(world.landlord_token, "GET", f"/api/v1/jobs/{INT4_MAX}").status_code == 404
    response = world.send(world.tenant_token, "GET", f"/api/v1/tenant/data/events/{INT4_MAX}")
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_field_value_out_of_its_columns_range_is_refused_naming_the_field(
    world: World, method: str
) -> None:
    path = "/api/v1/tenant/data/groups" + ("" if method == "POST" else f"/{world.group}")

    response = world.send(world.tenant_token, method, path, fields={"name": "Rowers", "unit_id": 10**30})

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["unit_id"]


def test_a_form_with_an_id_out_of_range_is_shown_again_with_the_field_marked(world: World) -> None:
    fields = {"name": "Rowers", "unit_id": str(2**64)}
    response = world.send(world.tenant_admin, "POST", f"/t/{SLUG}/data/groups", fields=fields)
    assert response.status_code == 422, response.text
    assert "Choose a unit from the list" in response.text

    invitation = {"email": "new@odd.example", "role": "tenant_member", "unit_ids": str(INT4_MAX + 1)}
    response = world.send(world.tenant_token, "POST", "/api/v1/tenant/people", fields=invitation)
    assert response.status_code in (404, 422), response.text


# --- Malformed JSON -------------------------------------------------------------------------------

JSON_ROUTES = [
    ("POST", "/api/v1/tenant/data/groups"),
    ("PUT", "/api/v1/tenant/data/groups/{group}"),
    ("PATCH", "/api/v1/tenant/data/groups/{group}"),
    ("POST", "/api/v1/tenant/people"),
    ("PUT", "/api/v1/tenant/modules"),
]
MALFORMED = {
    "deep arrays": b"[" * 50_000 + b"]" * 50_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep inside a field": b'{"name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "not UTF-8": b"\xff\xfe",
    "not UTF-8 inside a string": b'{"name": "\xff\xfe"}',
    "a lone surrogate": b'{"name": "\\ud800"}',
    "NUL inside a string": b'{"name": "a\\u0000b"}',
    "NUL in a key": b'{"na\\u0000me": "a"}',
    "not JSON": b"{",
}


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_malformed_json_is_a_bad_request_with_a_sentence(world: World, what: str) -> None:
    for method, route in JSON_ROUTES:
        path = route.format(group=world.group)
        response = world.send(world.tenant_token, method, path, raw=MALFORMED[what])
        assert response.status_code == 400, f"{method} {path}: {response.status_code} {response.text}"
        assert _detail(response).endswith("."), response.text
        assert_no_trace(response.text)


def test_a_body_larger_than_any_client_sends_is_refused(world: World) -> None:
    body = b'{"name": "' + b"x" * 3_000_000 + b'"}'
    response = world.send(world.tenant_token, "POST", "/api/v1/tenant/data/groups", raw=body)
    assert response.status_code == 413, response.text


def test_json_nested_deeper_than_any_client_sends_is_refused_however_short(world: World) -> None:
    nested: Any = "deepest"
    for _ in range(MAX_JSON_NESTING):
        nested = [nested]
    path = "/api/v1/tenant/data/groups"

    assert world.send(world.tenant_token, "POST", path, fields={"name": nested}).status_code == 400
    assert world.send(world.tenant_token, "POST", path, fields={"name": nested[0]}).status_code == 422


# --- NUL and lengths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tenant/data/groups?q=%00",
        f"/t/{SLUG}/data/groups?q=%00",
        "/api/v1/tenants?q=a%00b",
        "/audit?page=1&q=%00",
        f"/t/{SLUG}/data/gr%00oups",
        "/tenants/odd%00club",
    ],
)
def test_nul_in_an_address_is_a_bad_request(world: World, path: str) -> None:
    response = world.send(_owner(world, path), "GET", path)
    assert response.status_code == 400, f"{path}: {response.status_code} {response.text}"


def test_nul_in_a_form_is_a_bad_request(world: World) -> None:
    fields = {"name": "a\x00b", "kind": "unit"}
    assert world.send(world.tenant_admin, "POST", f"/t/{SLUG}/units", fields=fields).status_code == 400


def test_a_tenant_name_longer_than_its_column_is_refused_on_its_field(world: World) -> None:
    tenant = {"slug": "long-name", "name": "x" * 100_000, "template": "community_group"}
    response = world.send(world.landlord_token, "POST", "/api/v1/tenants", fields=tenant)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["name"]


# --- The walk ------------------------------------------------------------------------------------

#: Ids and numbers: mostly beyond what some column holds, or at its very edge.
BEYOND = st.sampled_from([INT4_MAX + 1, INT8_MAX + 1, -(2**31) - 1, -(2**63) - 1, 10**30, 2**70])
ODD_INTEGERS = st.one_of(
    BEYOND, BEYOND, st.sampled_from([0, -1, INT4_MAX, INT8_MAX]), st.integers(-(2**70), 2**70)
)
#: Text for addresses (the path and the query), and for bodies, which may also be long.
ODD_TEXT = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\u200b", "\x01\x02\x1f", "\r\n", "%00", "../..", ""]),
    st.text(st.characters(codec="utf-8"), max_size=40),
)
BODY_TEXT = ODD_TEXT | st.just("x" * 100_000)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | ODD_INTEGERS | BODY_TEXT | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=8,
)
RAW_BODIES = st.sampled_from([*MALFORMED.values(), b"", b"%00=%00", b"name=%ff%fe&kind=%00"])
#: A row's body: some columns of the tables the walk names.
ROW_FIELDS = ["name", "unit_id", "title", "user_id"]


def mostly(value: Any, otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`value` three times in four, so the odd parts of a request get past its door."""
    return st.one_of(st.just(value), st.just(value), st.just(value), otherwise)


def _inputs(route: HTTPRoute, handler: HTTPRouteHandler) -> tuple[list[str], list[str]]:
    """The names of the handler's query parameters, and of the fields its body takes."""
    query, body = [], []
    dependencies = set(handler.resolve_dependencies())
    for name, parameter in handler.parsed_fn_signature.parameters.items():
        if name in dependencies or f"{{{name}:" in route.path or name in ("request", "self"):
            continue
        if name == "data":
            kinds = [parameter.annotation, *getattr(parameter.annotation, "__args__", ())]
            kind = next((k for k in kinds if is_dataclass(k)), None)
            body = [f.name for f in fields(kind)] if kind is not None else ROW_FIELDS
        elif parameter.annotation in (str, int, int | None):
            query.append(getattr(parameter.kwarg_definition, "query", None) or name)
    return query, body


@dataclass(frozen=True)
class OddRequest:
    route: str
    caller: Caller | None
    method: str
    path: str
    fields: dict[str, Any] | None = None
    raw: bytes | None = None


@st.composite
def odd_requests(draw: st.DrawFn, world: World) -> OddRequest:
    """A request to any route of the app, its parameters and body filled with odd values."""
    route = draw(st.sampled_from([r for r in world.app.routes if isinstance(r, HTTPRoute)]))
    method = draw(st.sampled_from(sorted(route.methods - NOT_PROBED)))
    handler, _ = route.route_handler_map[method]
    owner = _owner(world, route.path)
    others = [c for c in (world.api_callers if route.path.startswith("/api/") else world.portal_callers)]
    caller = draw(st.sampled_from([owner, owner, owner, *[c for c in others if c != owner], None]))
    path = route.path.replace("{slug:str}", quote(draw(mostly(SLUG, ODD_TEXT)), safe=""))
    table = draw(mostly("groups", st.sampled_from(["events", "social_posts"]) | ODD_TEXT))
    path = path.replace("{table:str}", quote(table, safe=""))
    real_ids = st.sampled_from([world.unit, world.group, world.member_account])
    path = re.sub(r"{\w+:int}", lambda _: str(draw(real_ids | ODD_INTEGERS)), path)
    path = re.sub(r"{\w+:(str|path)}", lambda _: quote(draw(ODD_TEXT), safe=""), path)
    query_names, body_fields = _inputs(route, handler)
    query = {name: draw(ODD_TEXT | ODD_INTEGERS.map(str)) for name in query_names if draw(st.booleans())}
    if query:
        path += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    if method not in WITH_BODY:
        return OddRequest(route.path, caller, method, path)
    if draw(st.booleans()):
        return OddRequest(route.path, caller, method, path, raw=draw(RAW_BODIES))
    values = JSON_VALUES if route.path.startswith("/api/") else BODY_TEXT | ODD_INTEGERS.map(str)
    body = {name: draw(values) for name in body_fields if draw(st.booleans())}
    return OddRequest(route.path, caller, method, path, fields=body)


def test_no_route_answers_a_server_error_whatever_it_is_sent(world: World) -> None:
    """Generated ids, integers, text with NUL and control characters, deep and non-UTF-8 bodies
    to every route, as the landlord and a tenant admin (sessions and tokens) and anonymously."""
    sent = 0

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not LONG_RUN,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def walk(data: st.DataObject) -> None:
        nonlocal sent
        odd = data.draw(odd_requests(world))
        response = world.send(odd.caller, odd.method, odd.path, fields=odd.fields, raw=odd.raw)
        sent += 1
        assert response.status_code < 500, f"{odd.method} {odd.path}: {response.status_code} {response.text}"
        assert_no_trace(response.text)
        if odd.route in SESSION_CHANGING and odd.caller is not None and odd.caller.credentials:
            world.sign_in(odd.caller)

    walk()
    assert sent >= EXAMPLES
