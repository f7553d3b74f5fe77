"""One rule for times on pages: in the tenant portal every time is on the tenant's clock, in the
landlord portal on UTC, each labelled with its zone. Templates write `when(moment)`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import pass_context
from markupsafe import Markup, escape

from services.tenant_settings import on_clock


@pass_context
def when(context: Any, moment: datetime | None, *, seconds: bool = False, date_only: bool = False) -> Markup:
    """`<time>` for `moment` on the page's clock: the tenant's, on a page of its portal (one that
    names the caller's `access`), else UTC; its zone said beside it. Nothing for None."""
    if moment is None:
        return Markup("")
    access = context.get("access")
    local = on_clock(moment, access.tenant.timezone) if access is not None else on_clock(moment, "UTC")
    shown = local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    machine = local.astimezone(UTC).isoformat(timespec="seconds")
    zone = "" if date_only else f' <small class="zone">{escape(local.tzname() or "UTC")}</small>'
    return Markup(f'<time class="nowrap" datetime="{machine}">{escape(shown)}</time>{zone}')
