"""Settings read once from the environment; every default works on a single machine."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_BROKER = "embedded"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    secret_key: str
    admin_email: str
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

    @property
    def broker_is_embedded(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

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
            secure_cookies=env.get("TENANTRY_SECURE_COOKIES", "").lower() in {"1", "true", "yes"},
        )


def _install_secret(data_dir: Path) -> str:
    """The per-install secret: generated on first start, then read back from the data dir."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
