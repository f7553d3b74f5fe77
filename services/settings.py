"""Settings read once from the environment; every default works on a single machine."""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from services.errors import InvalidSetting
from services.rate_limits.counters import MEMORY
from services.rate_limits.policy import Rates
from services.server_limits import SERVER_JOBS, ServerWork, server_jobs_as_setting, server_jobs_from_setting

EMBEDDED_BROKER = "embedded"
T = TypeVar("T", int, float)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ANONYMOUS_RATES = Rates(read=300, write=60, export=10, sign_in=20)
STAFF_RATES = Rates(read=1200, write=300, export=60)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    secret_key: str
    admin_email: str
    #: The PostgreSQL server tenant stores are placed on (database and schema isolation).
    #: Defaults to the landlord's server when the landlord is on PostgreSQL; None means SQLite files.
    tenant_postgres_url: str | None = None
    #: Several PostgreSQL servers tenant stores may be placed on (TENANTRY_TENANT_SERVERS), by name
    #: and in order: the first is the default. Empty: the one server above, named "main".
    tenant_servers: tuple[tuple[str, str], ...] = ()
    #: How a new tenant's server is chosen among several: "fewest-tenants" or "least-storage".
    placement: str = "fewest-tenants"
    #: Plans whose tenants always go on one server (TENANTRY_PLAN_SERVERS), as (plan, server) pairs.
    plan_servers: tuple[tuple[str, str], ...] = ()
    #: Keeps this installation's queues apart from others on a shared Redis or RabbitMQ.
    broker_namespace: str = "tenantry"
    layers_dir: Path = PROJECT_ROOT / "layers"
    static_dir: Path = PROJECT_ROOT / "static"
    #: Failed sign-ins allowed per email and address before further attempts wait.
    login_attempts: int = 5
    login_lockout_seconds: int = 15 * 60
    session_max_age_seconds: int = 12 * 60 * 60
    #: Cookies marked Secure; on behind TLS (fly.io), off for http://127.0.0.1.
    secure_cookies: bool = False
    #: Modules imported wherever jobs are recorded or run, so the kinds they register with
    #: `services.jobs.job_handler` are known there too (plug-ins, tests).
    job_modules: tuple[str, ...] = ()
    #: A running job's worker renews its lease every third of this; a lease left to expire means
    #: the worker died, and the job is claimed again and resumes.
    job_lease_seconds: float = 30.0
    #: How long a deleted tenant's store is kept, during which the deletion can be undone.
    deletion_grace_days: float = 7.0
    #: How long the store a tenant moved out of is kept, during which it can be moved back to it.
    move_retention_days: float = 7.0
    #: Jobs one tenant may run at once (fewer while another tenant's job waits: services.jobs).
    jobs_per_tenant: int = 2
    #: Backups, restores and migrations at once on one database server (services.server_limits).
    server_jobs: Mapping[ServerWork, int] = field(default_factory=lambda: dict(SERVER_JOBS))
    #: Clone pre-built stores (golden images) instead of replaying migrations when one exists.
    golden_images: bool = True
    #: Stores kept built ahead per recipe (template, modules, isolation, layer heads) once a tenant
    #: has asked for it, so the next such tenant takes one instead of waiting for its migrations.
    #: The installation default (TENANTRY_WARM_POOL) is 2; settings built in code keep none.
    warm_pool_size: int = 0
    #: Tenants are also reached at <slug>.<base domain> when set (e.g. tenantry.example).
    base_domain: str | None = None
    #: A superadmin's switch into a tenant ends by itself after this long.
    switch_minutes: int = 30
    #: Open connections this process holds to tenant stores, at most (idle stores are closed first).
    tenant_connections: int = 20
    #: The reverse proxies (addresses or networks) whose word on the client's address is taken;
    #: none by default, so no client can name its own address to the sign-in throttle or the trail.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    #: Where a trusted proxy names the client: X-Forwarded-For (its right-most address that is not
    #: a trusted proxy's), or a header holding one address that the proxy sets itself (Fly-Client-IP).
    client_address_header: str = "X-Forwarded-For"
    #: The workers check every tenant for drift this often (0: never by themselves). The installation
    #: default (TENANTRY_DRIFT_CHECK_HOURS) is daily; settings built in code check only on demand.
    drift_check_hours: float = 0.0
    #: Every tenant's usage measured and kept this often (TENANTRY_USAGE_ROUND_HOURS, 24 by
    #: default; settings built in code take none: their tests measure when they mean to).
    usage_round_hours: float = 0.0
    #: `tenantry migrate` also starts a rollout of every layer to its head, with the default plan.
    auto_rollout: bool = False
    #: Requests are held to rate limits (services.rate_limits); TENANTRY_RATE_LIMITS=off lifts them all.
    rate_limits: bool = True
    #: Where requests are counted: "memory" (this process; the embedded default serves from one)
    #: or a redis:// URL that every web process counts in. The installation default
    #: (TENANTRY_RATE_LIMITS_URL) is the broker's Redis when the broker is one.
    rate_limits_url: str = MEMORY
    #: Requests a minute each address may send without signing in.
    anonymous_rates: Rates = ANONYMOUS_RATES
    #: Requests a minute each signed-in person or token may send outside a tenant's limits: the
    #: landlord's pages and API, and staff switched into a tenant.
    staff_rates: Rates = STAFF_RATES

    def __post_init__(self) -> None:
        unknown = [server for _, server in self.plan_servers if server not in self.servers]
        if unknown:
            raise InvalidSetting(
                f"TENANTRY_PLAN_SERVERS names {', '.join(unknown)}, which TENANTRY_TENANT_SERVERS does not."
            )

    @property
    def tenant_server_url(self) -> str | None:
        """The default PostgreSQL server for tenant stores, or None: tenants get SQLite files."""
        if self.tenant_servers:
            return self.tenant_servers[0][1]
        if self.tenant_postgres_url:
            return self.tenant_postgres_url
        return self.database_url if self.database_url.startswith("postgresql") else None

    @property
    def servers(self) -> dict[str, str]:
        """Every PostgreSQL server tenant stores may live on, by name, the default first."""
        if self.tenant_servers:
            return dict(self.tenant_servers)
        url = self.tenant_server_url
        return {DEFAULT_SERVER: url} if url else {}

    @property
    def broker_is_embedded(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

    @property
    def broker_url_for_display(self) -> str:
        """The broker URL for banners and logs: its password hidden."""
        parts = urlsplit(self.broker_url)
        if parts.password is None:
            return self.broker_url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("TENANTRY_DATA_DIR", "var")).resolve()
        return cls(
            data_dir=data_dir,
            database_url=env.get("TENANTRY_DATABASE_URL")
            or f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}",
            broker_url=env.get("TENANTRY_BROKER_URL") or EMBEDDED_BROKER,
            secret_key=env.get("TENANTRY_SECRET_KEY") or _install_secret(data_dir),
            admin_email=env.get("TENANTRY_ADMIN_EMAIL", "admin@localhost"),
            broker_namespace=env.get("TENANTRY_BROKER_NAMESPACE", "tenantry"),
            tenant_postgres_url=env.get("TENANTRY_TENANT_POSTGRES_URL") or None,
            tenant_servers=_servers(env.get("TENANTRY_TENANT_SERVERS", "")),
            placement=_placement(env.get("TENANTRY_PLACEMENT", PLACEMENTS[0])),
            plan_servers=_plan_servers(env.get("TENANTRY_PLAN_SERVERS", "")),
            secure_cookies=env.get("TENANTRY_SECURE_COOKIES", "").lower() in {"1", "true", "yes"},
            layers_dir=Path(env["TENANTRY_LAYERS_DIR"]).resolve()
            if env.get("TENANTRY_LAYERS_DIR")
            else PROJECT_ROOT / "layers",
            golden_images=env.get("TENANTRY_GOLDEN_IMAGES", "on").lower() not in {"0", "off", "false", "no"},
            warm_pool_size=_number(env, "TENANTRY_WARM_POOL", "2", int),
            job_lease_seconds=_number(env, "TENANTRY_JOB_LEASE_SECONDS", "30", float),
            deletion_grace_days=_number(env, "TENANTRY_DELETION_GRACE_DAYS", "7", float),
            move_retention_days=_number(env, "TENANTRY_MOVE_RETENTION_DAYS", "7", float),
            jobs_per_tenant=_at_least_one(env, "TENANTRY_JOBS_PER_TENANT", "2"),
            server_jobs=server_jobs_from_setting("TENANTRY_SERVER_JOBS", env.get("TENANTRY_SERVER_JOBS", "")),
            base_domain=env.get("TENANTRY_BASE_DOMAIN", "").strip().lower().strip(".") or None,
            switch_minutes=_number(env, "TENANTRY_SWITCH_MINUTES", "30", int),
            tenant_connections=_number(env, "TENANTRY_TENANT_CONNECTIONS", "20", int),
            job_modules=tuple(
                name.strip() for name in env.get("TENANTRY_JOB_MODULES", "").split(",") if name.strip()
            ),
            trusted_proxies=_networks("TENANTRY_TRUSTED_PROXIES", env.get("TENANTRY_TRUSTED_PROXIES", "")),
            client_address_header=env.get("TENANTRY_CLIENT_ADDRESS_HEADER", "").strip() or "X-Forwarded-For",
            drift_check_hours=_number(env, "TENANTRY_DRIFT_CHECK_HOURS", "24", float),
            usage_round_hours=_number(env, "TENANTRY_USAGE_ROUND_HOURS", "24", float),
            auto_rollout=env.get("TENANTRY_AUTO_ROLLOUT", "").lower() in {"1", "on", "true", "yes"},
            rate_limits=env.get("TENANTRY_RATE_LIMITS", "on").lower() not in {"0", "off", "false", "no"},
            rate_limits_url=_rate_limits_url(env),
            anonymous_rates=_rates(env, "TENANTRY_RATE_LIMITS_ANONYMOUS", cls.anonymous_rates),
            staff_rates=_rates(env, "TENANTRY_RATE_LIMITS_STAFF", cls.staff_rates),
        )

    def as_env(self) -> dict[str, str]:
        """These settings as the TENANTRY_* variables `from_env` reads back into them: for a process
        started with them (`tenantry` commands in tests, the benchmarks' servers)."""
        env = {
            "TENANTRY_DATA_DIR": str(self.data_dir),
            "TENANTRY_DATABASE_URL": self.database_url,
            "TENANTRY_BROKER_URL": self.broker_url,
            "TENANTRY_SECRET_KEY": self.secret_key,
            "TENANTRY_ADMIN_EMAIL": self.admin_email,
            "TENANTRY_BROKER_NAMESPACE": self.broker_namespace,
            "TENANTRY_SECURE_COOKIES": "true" if self.secure_cookies else "false",
            "TENANTRY_LAYERS_DIR": str(self.layers_dir),
            "TENANTRY_GOLDEN_IMAGES": "on" if self.golden_images else "off",
            "TENANTRY_WARM_POOL": str(self.warm_pool_size),
            "TENANTRY_JOB_LEASE_SECONDS": repr(self.job_lease_seconds),
            "TENANTRY_DELETION_GRACE_DAYS": repr(self.deletion_grace_days),
            "TENANTRY_MOVE_RETENTION_DAYS": repr(self.move_retention_days),
            "TENANTRY_JOBS_PER_TENANT": str(self.jobs_per_tenant),
            "TENANTRY_SERVER_JOBS": server_jobs_as_setting(self.server_jobs),
            "TENANTRY_BASE_DOMAIN": self.base_domain or "",
            "TENANTRY_SWITCH_MINUTES": str(self.switch_minutes),
            "TENANTRY_TENANT_CONNECTIONS": str(self.tenant_connections),
            "TENANTRY_JOB_MODULES": ",".join(self.job_modules),
            "TENANTRY_TRUSTED_PROXIES": ",".join(str(network) for network in self.trusted_proxies),
            "TENANTRY_CLIENT_ADDRESS_HEADER": self.client_address_header,
            "TENANTRY_DRIFT_CHECK_HOURS": repr(self.drift_check_hours),
            "TENANTRY_USAGE_ROUND_HOURS": repr(self.usage_round_hours),
            "TENANTRY_AUTO_ROLLOUT": "on" if self.auto_rollout else "off",
            "TENANTRY_RATE_LIMITS": "on" if self.rate_limits else "off",
            "TENANTRY_RATE_LIMITS_URL": self.rate_limits_url,
            "TENANTRY_RATE_LIMITS_ANONYMOUS": self.anonymous_rates.as_setting(),
            "TENANTRY_RATE_LIMITS_STAFF": self.staff_rates.as_setting(),
        }
        if self.tenant_postgres_url:
            env["TENANTRY_TENANT_POSTGRES_URL"] = self.tenant_postgres_url
        if self.tenant_servers:
            env["TENANTRY_TENANT_SERVERS"] = ", ".join(f"{name}={url}" for name, url in self.tenant_servers)
        env["TENANTRY_PLACEMENT"] = self.placement
        if self.plan_servers:
            env["TENANTRY_PLAN_SERVERS"] = ", ".join(f"{plan}={server}" for plan, server in self.plan_servers)
        return env


#: The name of the one PostgreSQL server of an installation that names none.
DEFAULT_SERVER = "main"
#: How new tenants are placed among several servers (the first is the default).
PLACEMENTS = ("fewest-tenants", "least-storage")
_SERVER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def _servers(listed: str) -> tuple[tuple[str, str], ...]:
    """`name=postgresql+asyncpg://…` pairs, comma-separated. A mistyped one stops the start."""
    servers: dict[str, str] = {}
    for item in (part.strip() for part in listed.split(",")):
        if not item:
            continue
        name, _, url = (piece.strip() for piece in item.partition("="))
        if not _SERVER_NAME.match(name) or not url.startswith("postgresql"):
            raise InvalidSetting(
                f"TENANTRY_TENANT_SERVERS: {item!r} is not name=postgresql+asyncpg://… (a name of lower-case "
                "letters, digits and hyphens, starting with a letter)."
            )
        if name in servers:
            raise InvalidSetting(f"TENANTRY_TENANT_SERVERS names {name!r} twice.")
        servers[name] = url
    return tuple(servers.items())


def _plan_servers(listed: str) -> tuple[tuple[str, str], ...]:
    """`plan=server` pairs, comma-separated (the servers are checked against the servers named)."""
    pairs = []
    for item in (part.strip() for part in listed.split(",")):
        if not item:
            continue
        plan, _, server = (piece.strip() for piece in item.partition("="))
        if not plan or not _SERVER_NAME.match(server):
            raise InvalidSetting(f"TENANTRY_PLAN_SERVERS: {item!r} is not plan=server.")
        pairs.append((plan, server))
    return tuple(pairs)


def _placement(text: str) -> str:
    if text not in PLACEMENTS:
        raise InvalidSetting(f"TENANTRY_PLACEMENT is one of {', '.join(PLACEMENTS)}, not {text!r}.")
    return text


def _rate_limits_url(env: Mapping[str, str]) -> str:
    """TENANTRY_RATE_LIMITS_URL (`memory` or redis://), else the broker's Redis, else memory."""
    url = env.get("TENANTRY_RATE_LIMITS_URL", "").strip() or env.get("TENANTRY_BROKER_URL", "").strip()
    if url.startswith(("redis://", "rediss://")):
        return url
    if env.get("TENANTRY_RATE_LIMITS_URL", "").strip() not in ("", MEMORY):
        raise InvalidSetting("TENANTRY_RATE_LIMITS_URL is `memory` or a redis:// URL.")
    return MEMORY


def _rates(env: Mapping[str, str], variable: str, default: Rates) -> Rates:
    text = env.get(variable)
    return default if text is None else Rates.from_setting(variable, text)


def _at_least_one(env: Mapping[str, str], variable: str, default: str) -> int:
    value = _number(env, variable, default, int)
    if value < 1:
        raise InvalidSetting(f"{variable} must be a whole number, 1 or more, not {env.get(variable)!r}.")
    return value


def _number(env: Mapping[str, str], variable: str, default: str, kind: type[T]) -> T:
    """The variable's number; a mistyped or negative one stops the start with a sentence."""
    text = env.get(variable, default)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        what = "a whole number" if kind is int else "a number"
        raise InvalidSetting(f"{variable} must be {what}, 0 or more, not {text!r}.")
    return value


def _networks(variable: str, listed: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses and networks (`10.0.0.0/8`, `fdaa::/16`, `192.0.2.7`). A mistyped
    one stops the start: silently trusting nobody, or the wrong network, is worse."""
    networks = []
    for item in (part.strip() for part in listed.split(",")):
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError as error:
            raise InvalidSetting(f"{variable}: {item!r} is not an IP address or network ({error}).") from None
    return tuple(networks)


def _install_secret(data_dir: Path) -> str:
    """The per-install secret: generated on first start, then read back from the data dir. Written
    to a private temporary file and linked into place, so two processes starting together agree
    on one secret and neither ever reads a half-written file."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
