"""fly.toml and the Dockerfile name commands, paths and files of this project: keep them true.

Neither fly nor docker runs here; what they would run is checked against the real CLI parser, the
real app and the real tree."""

from __future__ import annotations

import json
import shlex
import tomllib
from argparse import Namespace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from services.settings import PROJECT_ROOT, Settings
from tenantry import cli

FLY_TOML = PROJECT_ROOT / "fly.toml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"


def fly() -> dict[str, Any]:
    return tomllib.loads(FLY_TOML.read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with comments dropped and continued lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def parse_cli(command: str | list[str]) -> Namespace:
    """Parse a `tenantry …` command line with the real parser; fail if the CLI would refuse it."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[0] == "tenantry", f"{command!r} does not run the tenantry CLI"
    try:
        return cli.build_parser().parse_args(argv[1:])
    except SystemExit as exit:
        pytest.fail(f"`{shlex.join(argv)}` is not a valid tenantry command (exit {exit.code})")


def web_port() -> int:
    return int(fly()["http_service"]["internal_port"])


# fly.toml


def test_fly_app_and_process_groups() -> None:
    config = fly()
    assert config["app"] == "tenantry"
    assert set(config["processes"]) == {"web", "worker"}
    assert config["http_service"]["processes"] == ["web"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (("processes", "web"), "serve"),
        (("processes", "worker"), "worker"),
        (("deploy", "release_command"), "migrate"),
    ],
    ids=["web", "worker", "release_command"],
)
def test_every_fly_command_is_a_cli_command(where: tuple[str, str], expected: str) -> None:
    section, key = where
    args = parse_cli(fly()[section][key])
    assert args.command == expected


def test_web_process_listens_where_fly_sends_traffic() -> None:
    args = parse_cli(fly()["processes"]["web"])
    assert args.host == "0.0.0.0", "fly's proxy reaches the machine on its private address, not loopback"
    assert args.port == web_port()


def test_fly_health_check_is_a_get_of_healthz() -> None:
    checks = fly()["http_service"]["checks"]
    assert [check["path"] for check in checks] == ["/healthz"]
    assert all(check.get("method", "GET").upper() == "GET" for check in checks)


def test_fly_health_check_path_is_served(client: TestClient[Any]) -> None:
    for check in fly()["http_service"]["checks"]:
        response = client.get(check["path"])
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"


def test_fly_env_gives_the_settings_production_needs() -> None:
    env = fly()["env"]
    # The secret key comes from a fly secret in production; here it stops from_env writing one.
    settings = Settings.from_env({**env, "TENANTRY_SECRET_KEY": "from-a-fly-secret"})
    assert settings.data_dir == Path("/data")
    assert settings.secure_cookies is True


def test_fly_trusts_only_its_private_proxy_network_to_name_the_client() -> None:
    settings = Settings.from_env({**fly()["env"], "TENANTRY_SECRET_KEY": "from-a-fly-secret"})

    assert settings.trusted_proxies == (ip_network("172.16.0.0/12"),)
    assert all(network.is_private for network in settings.trusted_proxies)
    # X-Forwarded-For on Fly ends with the app's own anycast address, which is no client's.
    assert settings.client_address_header == "Fly-Client-IP"


def test_fly_secrets_are_named_in_comments_never_set_in_env() -> None:
    env = fly()["env"]
    text = FLY_TOML.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for name, scheme in [
        ("TENANTRY_DATABASE_URL", "postgresql+asyncpg://"),
        ("TENANTRY_BROKER_URL", "redis://"),
        ("TENANTRY_SECRET_KEY", ""),
    ]:
        assert name not in env, f"{name} is a secret: set it with `fly secrets set`, not in [env]"
        assert name in comments and scheme in comments, f"fly.toml's comments should say how {name} is set"


# Dockerfile


def test_dockerfile_base_image() -> None:
    assert dockerfile()[0] == ("FROM", "python:3.11-slim")


def test_dockerfile_installs_the_lock_with_hashes_then_the_project() -> None:
    steps = dockerfile()
    runs = [shlex.split(arguments) for keyword, arguments in steps if keyword == "RUN"]
    locked = ["pip", "install", "--require-hashes", "-r", "requirements.lock"]
    project = ["pip", "install", "--no-deps", "--no-build-isolation", "-e", "."]
    assert locked in runs, "the dependencies are installed from requirements.lock, hashes checked"
    assert project in runs, "the project itself adds no dependency beyond the lock"
    assert runs.index(locked) < runs.index(project)

    copies = [
        (index, arguments.split()) for index, (keyword, arguments) in enumerate(steps) if keyword == "COPY"
    ]
    install_lock = steps.index(("RUN", shlex.join(locked)))
    assert any("requirements.lock" in parts[:-1] for index, parts in copies if index < install_lock)


def test_dockerfile_copies_what_the_app_needs_at_run_time() -> None:
    steps = dockerfile()
    install_project = steps.index(("RUN", "pip install --no-deps --no-build-isolation -e ."))
    sources = {
        Path(source).as_posix().rstrip("/")
        for index, (keyword, arguments) in enumerate(steps)
        if keyword == "COPY" and index < install_project
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    }
    for source in sources - {"."}:
        assert (PROJECT_ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repo"
    if "." in sources:
        return
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    data_dirs = {
        default.relative_to(PROJECT_ROOT).as_posix() for default in (Settings.layers_dir, Settings.static_dir)
    }
    missing = ({"pyproject.toml"} | packages | data_dirs) - sources
    assert not missing, f"the image lacks {sorted(missing)}"


def test_dockerfile_runs_as_a_user_other_than_root() -> None:
    users = [arguments for keyword, arguments in dockerfile() if keyword == "USER"]
    assert users, "the image switches to a user of its own"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_exposes_the_port_fly_uses() -> None:
    exposed = [arguments for keyword, arguments in dockerfile() if keyword == "EXPOSE"]
    assert exposed == [str(web_port())]


def test_dockerfile_cmd_is_a_cli_command() -> None:
    commands = [arguments for keyword, arguments in dockerfile() if keyword == "CMD"]
    assert len(commands) == 1
    argv = json.loads(commands[0])  # exec form: signals reach tenantry, not a shell
    args = parse_cli(argv)
    assert args.command == "serve"
    assert (args.host, args.port) == ("0.0.0.0", web_port())
