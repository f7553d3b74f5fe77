"""`tenantry`: the command line, the composition root. It runs the web app (by its import string)
and the workers; everything else it does goes through services."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts import tokens, users
from services.accounts.recorded import issue_token, withdraw_token
from services.accounts.users import ROLES
from services.audit import Caller, command_line_actor, record, verify
from services.db import Database
from services.errors import DomainError
from services.installation import prepare_landlord
from services.layers.catalogue import load_catalogue
from services.layers.landlord import migrate_landlord
from services.models import ApiToken, Tenant, TenantStatus, User
from services.people.people import add_profile
from services.rate_limits.counters import MEMORY
from services.rollouts.fleet import Fleet, read_fleet
from services.settings import Settings
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import location_of
from services.tenancy.tenants import get_tenant
from tenantry.landlord import open_landlord
from tenantry.move_plans import add_move_plan_commands
from tenantry.moves import add_move_commands
from tenantry.rollouts import add_rollout_commands, start_default_rollout
from tenantry.splits import add_split_commands

T = TypeVar("T")


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    database = Database(settings.database_url)
    try:
        return await work(database)
    finally:
        await database.dispose()


async def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    database = await open_landlord(settings)
    try:
        async with database.session() as session:
            return await work(session)
    finally:
        await database.dispose()


def _print_seed(seed: users.NewUser | None, email: str) -> None:
    if seed is None:
        print(f"Superadmin: {email} (password set earlier; it is not shown again)")
    else:
        print(f"Superadmin created: {seed.user.email}")
        print(f"Password (shown once, keep it now): {seed.password}")


def _configure_logging() -> None:
    """Long-running commands log with timestamps; Dramatiq's start-up chatter is left out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dramatiq").setLevel(logging.WARNING)


def web_processes(settings: Settings, asked: int | None) -> int:
    """How many web processes `tenantry serve` runs: as asked, else one per core the process may
    use. The embedded broker keeps its jobs in one process's memory, where its in-process worker
    runs them: a second web process would send jobs that no worker ever sees, so it serves alone."""
    if settings.broker_is_embedded:
        if asked not in (None, 1):
            raise DomainError(
                "With the embedded broker Tenantry serves from one process: jobs are kept in that "
                "process's memory, and its in-process worker runs them. To serve from several, set "
                "TENANTRY_BROKER_URL to a redis:// or amqp:// URL and run `tenantry worker` beside them."
            )
        return 1
    return asked or len(os.sched_getaffinity(0))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from tenantry.serving import listen, serve_web

    processes = web_processes(settings, args.workers)
    _configure_logging()

    listener = listen(args.host, args.port)  # before anything is said: a taken port is a sentence
    _print_seed(asyncio.run(prepare_landlord(settings)), settings.admin_email)
    worker = (
        "in-process worker" if settings.broker_is_embedded else f"broker {settings.broker_url_for_display}"
    )
    print(
        f"Tenantry is serving at http://{args.host}:{args.port}  "
        f"({processes} web process{'es' if processes > 1 else ''}; data in {settings.data_dir}; {worker})",
        flush=True,
    )
    if processes > 1 and settings.rate_limits and settings.rate_limits_url == MEMORY:
        print(
            f"Rate limits are counted in each web process's memory: together the {processes} processes "
            "allow up to that many times each limit. Set TENANTRY_RATE_LIMITS_URL to a redis:// URL "
            "to count them in one place.",
            flush=True,
        )
    # Each web process builds the app from the same environment (web.asgi), after the landlord was
    # migrated and seeded here, once.
    serve_web("web.asgi:app", host=args.host, port=args.port, processes=processes, listener=listener)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    if settings.broker_is_embedded:
        raise DomainError(
            "With the embedded broker the worker runs inside `tenantry serve`. "
            "Set TENANTRY_BROKER_URL to a redis:// or amqp:// URL to run separate workers."
        )
    from workers.runner import run_worker_process

    _configure_logging()

    run_worker_process(settings, args.threads)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    """Migrate the landlord, then say which tenant layers are behind their heads (a deploy's
    release command: the tenants themselves move in a rollout)."""

    async def migrate(database: Database) -> tuple[Fleet, float]:
        await migrate_landlord(settings, database)
        started = time.perf_counter()
        async with database.session() as session:
            fleet = await read_fleet(session, load_catalogue(settings.layers_dir))
        return fleet, time.perf_counter() - started

    fleet, seconds = asyncio.run(_with_database(settings, migrate))
    print("The landlord database is up to date.")
    if not fleet.layers_behind:
        print(f"Every tenant's layers are at their heads ({fleet.tenants} tenants in service).")
        return
    print(f"Tenants behind their layers' heads ({fleet.tenants} in service; read in {seconds:.3f} s):")
    for layer in fleet.layers_behind:
        print(f"  {layer.key}: {layer.behind} behind {layer.head}")
    if settings.auto_rollout:
        print("TENANTRY_AUTO_ROLLOUT is on: starting a rollout of every layer to its head.")
        start_default_rollout(settings)
    else:
        print("Plan a rollout: tenantry rollout plan (or set TENANTRY_AUTO_ROLLOUT=on).")


async def _add_profile(settings: Settings, tenant: Tenant, account: User, role: str) -> None:
    """A tenant role's profile in the tenant's store, committed before its membership (the door)
    commits with the caller's session, as an invitation does."""
    async with enter_tenant(tenant.id, location_of(settings, tenant)) as entered, entered.session() as data:
        await add_profile(data, account, role)


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> None:
    async def create(session: AsyncSession) -> users.NewUser:
        created = await users.create_user(session, email=args.email, role=args.role, tenant_slug=args.tenant)
        tenant = await get_tenant(session, args.tenant) if args.tenant else None
        # A tenant still being built has no store to write to yet: its people get their profile
        # the first time they are changed, as anyone whose membership came without one.
        if tenant is not None and tenant.status not in (TenantStatus.PROVISIONING, TenantStatus.FAILED):
            await _add_profile(settings, tenant, created.user, args.role)
        await record(session, action="user.create", actor=command_line_actor(), target=created.user.email)
        return created

    created = asyncio.run(_in_session(settings, create))
    print(f"Created {created.user.email} ({args.role}).")
    print(f"Password (shown once): {created.password}")


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> None:
    expires_in = timedelta(days=args.expires_in_days) if args.expires_in_days else None

    async def create(session: AsyncSession) -> tokens.NewToken:
        return await issue_token(
            session,
            Caller(command_line_actor()),
            email=args.email,
            tenant_slug=args.tenant,
            name=args.name,
            expires_in=expires_in,
        )

    created = asyncio.run(_in_session(settings, create))
    scope = f"tenant {args.tenant}" if args.tenant else "the landlord"
    expires_at = created.token.expires_at
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "with no expiry"
    print(f"Token {created.token.id} for {args.email}, scoped to {scope}, {until}. It is shown once:")
    print(created.secret)


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> None:
    found = asyncio.run(_in_session(settings, lambda session: tokens.list_tokens(session, args.email)))
    print(f"{'id':>4}  {'prefix':<12} {'user':<32} {'scope':<20} {'name':<12} state")
    for token in found:
        scope = token.tenant.slug if token.tenant else "landlord"
        state = _token_state(token)
        print(
            f"{token.id:>4}  {token.prefix:<12} {token.user.email:<32} {scope:<20} {token.name:<12} {state}"
        )


def _token_state(token: ApiToken) -> str:
    if token.revoked_at:
        return f"revoked {token.revoked_at:%Y-%m-%d}"
    if token.expires_at is None:
        return "active"
    return f"{'expired' if tokens.has_expired(token) else 'expires'} {token.expires_at:%Y-%m-%d}"


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def revoke(session: AsyncSession) -> None:
        await withdraw_token(session, Caller(command_line_actor()), args.id)

    asyncio.run(_in_session(settings, revoke))
    print(f"Token {args.id} is revoked.")


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(_in_session(settings, verify))
    if result.ok:
        print(f"Audit trail intact: {result.count} entries")
        return 0
    print(f"Audit trail broken at entry #{result.broken_at}: {result.problem}")
    return 1


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantry", description="Tenantry, the multi-tenant control portal."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate, seed the superadmin and serve the portal")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        metavar="N",
        help="web processes (default: one per core; one with the embedded broker)",
    )
    serve.set_defaults(run=cmd_serve)

    worker = commands.add_parser("worker", help="run background workers (Redis or RabbitMQ broker)")
    worker.add_argument("--threads", type=int, default=4)
    worker.set_defaults(run=cmd_worker)

    commands.add_parser("migrate", help="apply the landlord database migrations").set_defaults(
        run=cmd_migrate
    )

    create_user = commands.add_parser("create-user", help="create a user; prints a generated password once")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--role", required=True, choices=ROLES)
    create_user.add_argument("--tenant", help="the tenant's slug (tenant roles only)")
    create_user.set_defaults(run=cmd_create_user)

    token_commands = commands.add_parser("tokens", help="API tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    token_create = token_commands.add_parser("create", help="create a token; printed once, on the last line")
    token_create.add_argument("--email", required=True)
    token_create.add_argument("--tenant", help="scope the token to this tenant's slug")
    token_create.add_argument("--name", default="cli")
    token_create.add_argument(
        "--expires-in-days", type=_at_least_one, metavar="N", help="refused after N days (default: never)"
    )
    token_create.set_defaults(run=cmd_tokens_create)
    token_list = token_commands.add_parser("list", help="list tokens (never their secrets)")
    token_list.add_argument("--email")
    token_list.set_defaults(run=cmd_tokens_list)
    token_revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    token_revoke.add_argument("id", type=int)
    token_revoke.set_defaults(run=cmd_tokens_revoke)

    add_rollout_commands(commands)
    add_move_commands(commands)
    add_move_plan_commands(commands)
    add_split_commands(commands)

    audit_commands = commands.add_parser("audit", help="the landlord audit trail").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    audit_commands.add_parser(
        "verify", help="check the hash chain; exit 1 naming the first altered, missing or moved entry"
    ).set_defaults(run=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """`tenantry argv`, configured by `env` (the process's environment when None)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.run(Settings.from_env(env), args)
    except DomainError as error:
        print(f"tenantry: {error.message}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
