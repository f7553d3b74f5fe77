from typing import Any

from litestar.testing import TestClient


def test_superadmin_reaches_the_dashboard(superadmin_client: TestClient[Any]) -> None:
    page = superadmin_client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text
