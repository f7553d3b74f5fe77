"""The browser tests' world: a real `tenantry serve` in a subprocess and Debian's Chromium driven
by Playwright. No browser is ever downloaded: TENANTRY_TEST_BROWSER names the executable (default
/usr/bin/chromium). Without one the tests skip; with TENANTRY_TEST_BROWSER set they must run."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from services.accounts.passwords import TEST_HASHING_VARIABLE
from services.settings import Settings
from tests.support import Credentials, run_db

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DEFAULT_BROWSER = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 60
#: Playwright's default for expect() is 5 s; a cold server and a slow CI machine get more.
EXPECT_TIMEOUT_MS = 15_000
#: How much of the server's output a failed browser test shows.
SERVER_LINES_SHOWN = 80


def browser_executable() -> str | None:
    """The Chromium to drive, or None (then the tests skip). A configured one that is missing fails."""
    configured = os.environ.get("TENANTRY_TEST_BROWSER")
    if configured:
        path = shutil.which(configured) or configured
        if not Path(path).is_file():
            pytest.fail(f"TENANTRY_TEST_BROWSER={configured!r} is not an executable file")
        return path
    return DEFAULT_BROWSER if Path(DEFAULT_BROWSER).is_file() else None


@dataclass(frozen=True)
class Server:
    base_url: str
    data_dir: Path
    superadmin: Credentials
    process: subprocess.Popen[str]
    output: list[str] = field(repr=False)

    @property
    def settings(self) -> Settings:
        """Settings for reaching the server's own landlord database from the test process."""
        return Settings.from_env({"TENANTRY_DATA_DIR": str(self.data_dir)})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(data_dir: Path) -> dict[str, str]:
    """This machine's environment without any TENANTRY_* setting that would point elsewhere; the
    suite's cheap password hashing (tests/conftest.py) is kept."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TENANTRY_") or key == TEST_HASHING_VARIABLE
    }
    env.update(TENANTRY_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def _pump(stream: Any, lines: queue.Queue[str | None], output: list[str]) -> None:
    for line in stream:
        output.append(line)
        lines.put(line)
    lines.put(None)


def _wait_for_healthz(base_url: str, process: subprocess.Popen[str], deadline: float) -> None:
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except OSError as error:
            last_error = repr(error)
        time.sleep(0.1)  # the poll interval while the server boots, bounded by the deadline
    raise RuntimeError(f"/healthz did not answer 200 in time ({last_error})")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tenantry serve` on a free port with its own data dir; the superadmin's password is read
    from what it prints at start-up, exactly as a person would read it."""
    data_dir = tmp_path_factory.mktemp("tenantry-data")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    tenantry = Path(sys.executable).with_name("tenantry")
    process = subprocess.Popen(
        [str(tenantry), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=data_dir,
        env=_server_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []
    threading.Thread(target=_pump, args=(process.stdout, lines, output), daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        email = password = None
        while password is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError("`tenantry serve` printed no superadmin password:\n" + "".join(output))
            if match := re.match(r"Superadmin created: (\S+)", line):
                email = match.group(1)
            if match := re.match(r"Password \(shown once, keep it now\): (\S+)", line):
                password = match.group(1)
        assert email, "the email is printed before the password"
        try:
            _wait_for_healthz(base_url, process, deadline)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n--- tenantry serve said:\n{''.join(output)}") from None
        yield Server(base_url, data_dir, Credentials(email, password), process, output)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def in_server_db(server: Server) -> Callable[[Callable[[Any], Any]], Any]:
    """Run `work(session)` against the server's landlord database, committed.

    It runs in a thread of its own: while Playwright's sync API is alive it marks this thread's
    event loop as running, so asyncio.run() here would be refused."""

    def run(work: Callable[[Any], Any]) -> Any:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(run_db, server.settings, work).result(timeout=60)

    return run


def off_the_loop(work: Callable[..., T], *args: Any, timeout: float = 120) -> T:
    """`work(*args)` in a thread of its own, for helpers that call asyncio.run(): Playwright's sync
    API marks this thread's event loop as running."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work, *args).result(timeout=timeout)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for this module only, so that no other test runs beside Playwright's loop."""
    executable = browser_executable()
    if executable is None:
        pytest.skip(f"no browser: install Debian's chromium or set TENANTRY_TEST_BROWSER ({DEFAULT_BROWSER})")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, server: Server, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test; on failure its last screen is kept."""
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
        context.close()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored): screenshots for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    server = getattr(item, "funcargs", {}).get("server")
    if report.when == "call" and report.failed and isinstance(server, Server):
        # What the server said is where a 500's cause is: shown with the failure.
        report.sections.append(
            (
                f"tenantry serve, its last {SERVER_LINES_SHOWN} lines",
                "".join(server.output[-SERVER_LINES_SHOWN:]),
            )
        )
    return report
