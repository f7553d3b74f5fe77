"""Unknown addresses. Litestar answers an unmatched path before any middleware runs, so its 404
page would not know who is signed in; this last route lets the session and identity run first."""

from __future__ import annotations

from litestar import get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath


@get("/{address:path}", include_in_schema=False, sync_to_thread=False)
def unknown_address(address: FromPath[str]) -> None:
    raise NotFoundException(f"There is nothing at /{address.lstrip('/')}.")
