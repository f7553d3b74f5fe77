"""GET /healthz: is the landlord database reachable, is the broker (or embedded worker) alive."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.testing import TestClient

from services.settings import Settings
from tests.support import Credentials
from tests.web.portal import portal

NOTHING_LISTENS = "127.0.0.1:1"


def test_healthz_reports_the_database_and_the_embedded_worker_ok(client: TestClient[Any]) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["database"] == {"ok": True}
    assert report["broker"] == {"ok": True, "kind": "embedded"}


def test_healthz_is_503_when_the_broker_cannot_be_reached(
    settings: Settings, superadmin: Credentials
) -> None:
    with portal(dataclasses.replace(settings, broker_url=f"redis://{NOTHING_LISTENS}/0")) as client:
        response = client.get("/healthz")

    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unavailable"
    assert report["database"]["ok"] is True
    assert report["broker"]["ok"] is False
    assert report["broker"]["kind"] == "redis"


def test_healthz_is_503_when_the_database_cannot_be_reached(settings: Settings) -> None:
    unreachable = f"postgresql+asyncpg://postgres@{NOTHING_LISTENS}/nothing"
    with portal(dataclasses.replace(settings, database_url=unreachable)) as client:
        response = client.get("/healthz")

    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unavailable"
    assert report["database"]["ok"] is False
    assert report["broker"]["ok"] is True
    assert "postgres" not in str(report), "no connection details leak"
