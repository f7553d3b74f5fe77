"""Where a form's POST sends the browser next: a 303 (the browser follows it with a GET), or for
an HTMX request the header that makes htmx load the whole page there."""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import ClientRedirect, HTMXRequest


def see_other(request: HTMXRequest, target: str) -> Response[Any]:
    return ClientRedirect(target) if request.htmx else Redirect(target, status_code=HTTP_303_SEE_OTHER)
