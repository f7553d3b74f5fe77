"""Every tenant's jobs in one list (the platform's staff), filtered as its address says."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template
from litestar_htmx import HTMXRequest

from services.job_list import JobFilters, list_jobs
from web.auth import landlord_staff
from web.deps import DbSession


class JobsController(Controller):
    path = "/jobs"
    include_in_schema = False
    guards = [landlord_staff]

    @get("/")
    async def jobs(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        kind: FromQuery[str] = "",
        status: FromQuery[str] = "",
        tenant: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
    ) -> Template:
        filters = JobFilters(kind.strip(), status.strip(), tenant.strip())
        result = await list_jobs(db_session, filters, page)
        template = "landlord/_job_table.html" if request.htmx else "landlord/jobs.html"
        return Template(template, context={"result": result, "filters": filters})
