"""The audit trail viewer for landlord staff: each entry told as a sentence, its stored values a click
away; filters swapped in place by HTMX, and a CSV download."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter
from litestar.response import Response, Template
from litestar_htmx import HTMXRequest

from services.audit import ACTIONS, export_csv, search
from services.layers.catalogue import Catalogue, load_catalogue
from web.auth import landlord_staff
from web.deps import DbSession
from web.rate_limits import EXPORT


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    tenant: str = ""
    action: str = ""
    since: str = ""
    until: str = ""

    def days(self) -> tuple[date | None, date | None, str | None]:
        """The from/to days, and what is wrong with them (a day that is not a date is ignored)."""
        parsed: list[date | None] = []
        error = None
        for label, value in (("From", self.since), ("To", self.until)):
            try:
                parsed.append(date.fromisoformat(value) if value else None)
            except ValueError:
                parsed.append(None)
                error = f"{label} is not a date (YYYY-MM-DD); it is ignored."
        return parsed[0], parsed[1], error

    def search_arguments(self) -> dict[str, Any]:
        since, until, _ = self.days()
        return {
            "actor": self.actor,
            "tenant": self.tenant,
            "action": self.action,
            "since": since,
            "until": until,
        }

    @property
    def query(self) -> str:
        """The filters as a query string, for the pager and the CSV link."""
        return urlencode({name: value for name, value in asdict(self).items() if value})


def provide_filters(
    actor: FromQuery[str] = "",
    tenant: FromQuery[str] = "",
    action: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
) -> AuditFilters:
    """The filters from the query string, declared once for the page and the CSV download."""
    return AuditFilters(actor.strip(), tenant.strip(), action.strip(), since.strip(), until.strip())


def provide_catalogue(state: State) -> Catalogue:
    """The layers' catalogue, which gives the sentences their modules' titles."""
    return load_catalogue(state.settings.layers_dir)


class AuditController(Controller):
    include_in_schema = False
    guards = [landlord_staff]
    dependencies = {
        "filters": Provide(provide_filters, sync_to_thread=False),
        "catalogue": Provide(provide_catalogue, sync_to_thread=False),
    }

    @get("/audit")
    async def audit_trail(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        filters: NamedDependency[AuditFilters],
        catalogue: NamedDependency[Catalogue],
        page: Annotated[int, QueryParameter(ge=1)] = 1,
    ) -> Template:
        result = await search(db_session, **filters.search_arguments(), page=page, catalogue=catalogue)
        context = {"result": result, "filters": filters, "actions": ACTIONS, "error": filters.days()[2]}
        template = "landlord/_audit_table.html" if request.htmx else "landlord/audit.html"
        return Template(template, context=context)

    @get("/audit.csv", opt=EXPORT)
    async def audit_csv(
        self,
        db_session: DbSession,
        filters: NamedDependency[AuditFilters],
        catalogue: NamedDependency[Catalogue],
    ) -> Response[str]:
        return Response(
            await export_csv(db_session, **filters.search_arguments(), catalogue=catalogue),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
