"""Running Tenantry as its users do: the real `tenantry` entry point in subprocesses, the landlord
migrations, and waiting for something to become true before a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.accounts.passwords import TEST_HASHING_VARIABLE
from services.db import Database
from services.layers.landlord import migrate_landlord
from services.settings import Settings
from tenantry.cli import main

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("tenantry")
#: The installed console script; `python -m tenantry.cli` where it is not installed.
TENANTRY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tenantry.cli"]


def wait_for(predicate: Callable[[], T | None], timeout: float, *, what: str, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what} (last saw {value!r})")
        time.sleep(interval)


def migrate(settings: Settings) -> Settings:
    """Bring the landlord database to the newest revision, in this process."""

    async def go() -> None:
        database = Database(settings.database_url)
        try:
            await migrate_landlord(settings, database)
        finally:
            await database.dispose()

    asyncio.run(go())
    return settings


def tenantry_env(settings: Settings | None = None, **variables: str) -> dict[str, str]:
    """The environment of a `tenantry` subprocess: none of ours leaks in but the suite's cheap password
    hashing (tests/conftest.py); `settings` go as the TENANTRY_* variables they read back as."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TENANTRY_") or name == TEST_HASHING_VARIABLE
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["TENANTRY_DRIFT_CHECK_HOURS"] = "0"  # no check of its own in the middle of a test
    if settings is not None:
        env.update(settings.as_env())
    env.update(variables)
    return env


def run_tenantry(
    args: Sequence[str], env: dict[str, str], timeout: float = 60, *, warm: bool = True
) -> subprocess.CompletedProcess[str]:
    """`tenantry args` to its end: its exit status and what it printed, as `subprocess.run` gives
    them. Forked from the warm starter (`warm=False`: the installed console script in a new
    interpreter, as the tests of the command line itself run it)."""
    command = [*TENANTRY, *args]
    if not warm:
        return subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-run-") as logs,
        background(args, env, Path(logs)) as running,
    ):
        try:
            status = running.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise subprocess.TimeoutExpired(command, timeout, running.stdout, running.stderr) from None
        return subprocess.CompletedProcess(command, status, running.stdout, running.stderr)


def run_tenantry_here(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`tenantry args` run in this process, by the function the console script calls, for a test
    that runs a quick command again and again; what it printed and its exit status as a process's.
    Tests of a command's process (its exit status, its output) use `run_tenantry`."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(args), env)
        except SystemExit as exit:  # the argument parser's refusals
            status = exit.code if isinstance(exit.code, int) else 1
    return subprocess.CompletedProcess([*TENANTRY, *args], status, out.getvalue(), err.getvalue())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Forked:
    """A `tenantry` process forked from the warm starter, answering what a test asks of a
    `subprocess.Popen`: its pid, whether it has exited and how, signals."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"tenantry (pid {self.pid})", timeout or 0)
        return self._process.exitcode

    def send_signal(self, number: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class Background:
    """A long-running `tenantry` command; its stdout and stderr go to files that can be read any time."""

    process: subprocess.Popen[bytes] | Forked
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"`tenantry` exited with {self.process.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a process manager stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"`tenantry` did not stop within {timeout}s of SIGTERM\n{self.stderr}"
            ) from None


# The warm starter ------------------------------------------------------------------------------------
#
# A new interpreter spends about 3 CPU-seconds importing the app before `tenantry serve` listens
# (SQLAlchemy, Litestar, every route's module), and a test may start dozens: a worker at every step
# of a job, to SIGKILL it there, or one command after another. So each `tenantry` process a test
# starts is forked from one that imported all that once (multiprocessing's forkserver, one per test
# process): the child runs the function the console script calls, with the command's environment,
# in the repository's folder, its stdout and stderr in files, as a `tenantry` process would. Nothing
# that reads the environment when imported is loaded ahead (the job gates read theirs,
# tests/workers); the suite's password hashing is the one such setting
# (services.accounts.passwords), and it is the same in every test process and every child
# (`tenantry_env`). The tests of the command line itself start the console script (`warm=False`).

_PRELOADED = ["tenantry.cli", "web.app", "workers.runner", "uvicorn", "tests.services.running"]
_WARM_STARTER = multiprocessing.get_context("forkserver")
_WARM_STARTER.set_forkserver_preload(_PRELOADED)


def _run_forked(args: Sequence[str], env: dict[str, str], stdout_path: Path, stderr_path: Path) -> None:
    """In the forked child: become `tenantry args`, its output going to the two files."""
    assert env.get(TEST_HASHING_VARIABLE) == os.environ.get(TEST_HASHING_VARIABLE), (
        "the warm starter imported the password hasher with other settings than this command's"
    )
    os.chdir(ROOT)
    os.environ.clear()
    os.environ.update(env)
    for descriptor, path in ((1, stdout_path), (2, stderr_path)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, descriptor)
        os.close(opened)
    sys.stdout.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
    sys.exit(main(list(args), env))


@contextmanager
def background(
    args: Sequence[str], env: dict[str, str], logs: Path, *, warm: bool = True
) -> Iterator[Background]:
    """Start `tenantry ARGS`, forked from the warm starter (`warm=False`: the installed console
    script in a new interpreter, as the tests of the command line itself do); it is killed on the
    way out if the test did not stop it."""
    logs.mkdir(parents=True, exist_ok=True)
    name = "-".join(args[:1]) or "tenantry"
    stdout_path, stderr_path = logs / f"{name}.out", logs / f"{name}.err"
    process: subprocess.Popen[bytes] | Forked
    if warm:
        forked = _WARM_STARTER.Process(target=_run_forked, args=(list(args), env, stdout_path, stderr_path))
        forked.start()
        process = Forked(forked)
    else:
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen([*TENANTRY, *args], env=env, cwd=ROOT, stdout=stdout, stderr=stderr)
    running = Background(process, stdout_path, stderr_path)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
