"""Input limits every request is held to before a handler sees it, in one place.

- **Bodies** are at most `MAX_BODY_BYTES` (413 beyond; Litestar counts the bytes as they come).
- **JSON** is decoded once, by `CheckedRequest.json`: a body that is not UTF-8, not JSON, nested
  deeper than `MAX_JSON_NESTING`, or holding a NUL character or half a surrogate pair in any
  string or key is a 400 with a sentence. No client of ours nests a tenth as deep.
- **NUL characters** are refused in the address (path and query, before any middleware looks a
  tenant up by them) and in forms: no column of either backend holds one (PostgreSQL refuses
  them outright).
- **Integer path parameters** name rows by id (`ID_COLUMNS`): an id beyond its column's range
  cannot exist, so it is "not found" (404) after the route's guards, like any unknown id, and never
  reaches the database, which would overflow (SQLite) or refuse it (PostgreSQL).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.datastructures import FormMultiDict
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import ClientException, NotFoundException, SerializationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar_htmx import HTMXRequest
from sqlalchemy import ColumnElement

from services.limits import WIDEST_INTEGER, holds
from services.models import ApiToken, Backup, Job, MovePlan, Rollout, TenantMove, User
from services.models.tenant import Unit

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_JSON_NESTING = 32
#: The column each integer path parameter names. A record's id names a row of the table in the
#: path, known only once the tenant's tables are: it is held to the widest integer here, and to its
#: own table's id column where the row is looked up (web.tenancy.records.visible_record).
ID_COLUMNS: dict[str, ColumnElement[Any] | None] = {
    "job_id": Job.__table__.c.id,
    "backup_id": Backup.__table__.c.id,
    "move_id": TenantMove.__table__.c.id,
    "rollout_id": Rollout.__table__.c.id,
    "plan_id": MovePlan.__table__.c.id,
    "user_id": User.__table__.c.id,
    "account_id": User.__table__.c.id,
    "token_id": ApiToken.__table__.c.id,
    "unit_id": Unit.__table__.c.id,
    "record_id": None,
}
#: What a string may not hold: NUL, and half a surrogate pair (JSON's "\ud800" decodes to one;
#: no database encodes it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NUL = "Text cannot contain NUL characters."


def _refuse_nul(decoded: bytes, where: str) -> None:
    if b"\x00" in decoded:
        raise ClientException(f"{_NUL} Take it out of the {where} and send it again.")


class NoNulInAddress(ASGIMiddleware):
    """A NUL in the path or the query is refused before anything is looked up by them."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] == ScopeType.HTTP:
            _refuse_nul(scope["path"].encode("utf-8", "surrogateescape"), "address")  # decoded already
            _refuse_nul(unquote_to_bytes(scope.get("query_string", b"")), "address")
        await next_app(scope, receive, send)


async def ids_in_range(request: Request[Any, Any, Any]) -> None:
    """An integer path parameter beyond its column's range names nothing: "not found"."""
    for name, value in request.path_params.items():
        if not isinstance(value, int) or name not in ID_COLUMNS:
            continue
        column = ID_COLUMNS[name]
        low, high = WIDEST_INTEGER
        if not (holds(column, value) if column is not None else low <= value <= high):
            raise NotFoundException("There is nothing here with that number.")


def _check_json(value: Any) -> None:
    """Nesting and strings of a decoded body, walked without recursion."""
    pending = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, str):
            if _UNSTORABLE.search(current):
                raise ClientException(f"{_NUL[:-1]} or unpaired surrogates. Take them out and send it again.")
            continue
        if not isinstance(current, dict | list):
            continue
        if depth >= MAX_JSON_NESTING:
            raise ClientException(f"The JSON body is nested more than {MAX_JSON_NESTING} levels deep.")
        items = [*current.keys(), *current.values()] if isinstance(current, dict) else current
        pending.extend((item, depth + 1) for item in items)


class CheckedRequest(HTMXRequest):
    """The app's request (HTMX's, which the HTMX plugin would set): its JSON and form bodies are
    checked as they are read (see the module)."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise ClientException(
                f"The JSON body is nested more than {MAX_JSON_NESTING} levels deep."
            ) from None
        except (UnicodeDecodeError, SerializationException):
            raise ClientException("The body is not valid JSON in UTF-8.") from None
        _check_json(value)
        return value

    async def body(self) -> bytes:
        body = await super().body()
        if self.content_type[0] == RequestEncodingType.URL_ENCODED:
            _refuse_nul(unquote_to_bytes(body), "form")
        return body

    async def form(self) -> FormMultiDict:
        form = await super().form()
        if any(isinstance(value, str) and "\x00" in value for _, value in form.multi_items()):
            raise ClientException(f"{_NUL} Take it out of the form and send it again.")
        return form
