"""GET /healthz: is the landlord database reachable, is the broker (or embedded worker) alive."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from services.settings import Settings
from workers.broker import check_broker
from workers.runner import JobQueue


async def check_health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    job_queue: JobQueue = request.app.state.job_queue
    database: dict[str, Any] = {"ok": True}
    try:
        with anyio.fail_after(5):
            await request.app.state.database.ping()
    except Exception as exc:
        database = {"ok": False, "error": type(exc).__name__}
    broker: dict[str, Any] = {"ok": True, "kind": settings.broker_url.split(":", 1)[0]}
    try:
        if settings.broker_is_embedded:
            if not job_queue.worker_alive:
                raise RuntimeError("the in-process worker is not running")
        else:
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(check_broker, job_queue.broker, abandon_on_cancel=True)
    except Exception as exc:
        broker = {**broker, "ok": False, "error": type(exc).__name__}
    return {
        "status": "ok" if database["ok"] and broker["ok"] else "unavailable",
        "database": database,
        "broker": broker,
    }


@get(
    "/healthz",
    tags=["operations"],
    summary="Liveness of the landlord database and the broker",
    responses={503: ResponseSpec(dict[str, Any], description="The database or the broker does not answer")},
)
async def healthz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    report = await check_health(request)
    return Response(report, status_code=200 if report["status"] == "ok" else 503)
