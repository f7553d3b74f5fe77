"""create_app(settings) -> Litestar: plugins, stores, middleware and routes are wired here, once: the
routes and middleware by `build_app`, the installation they serve (databases, broker, caches) by `attach`."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.registry import StoreRegistry
from litestar.template import TemplateConfig

from services.accounts.identities import Identities
from services.db import Database
from services.jobs import send_jobs_on_commit
from services.landlord_cache import LandlordMarks
from services.models.types import utcnow
from services.rate_limits.counters import counters_at
from services.settings import Settings
from services.tenancy.connections import TenantConnections
from web.account.controller import AccountController
from web.account.password_first import PasswordFirstMiddleware
from web.api.backup_schedule import BackupScheduleApiController
from web.api.backups import BackupsApiController
from web.api.lifecycle import TenantLifecycleApiController
from web.api.move_plans import MovePlansApiController
from web.api.moves import MovesApiController
from web.api.provisioning import CatalogueApiController, ProvisioningApiController
from web.api.responses import ApiErrorsDocumented
from web.api.restores import RestoresApiController
from web.api.rollouts import RolloutsApiController
from web.api.tenant import TenantApiController
from web.api.tenant_modules import TenantModulesApiController
from web.api.tenant_people import TenantPeopleApiController
from web.api.tenants import TenantsApiController
from web.auth import IdentityMiddleware, current_user
from web.clock import when
from web.deps import provide_db_session
from web.errors import EXCEPTION_HANDLERS
from web.health import healthz
from web.landlord.audit import AuditController
from web.landlord.backup_schedule import BackupScheduleController
from web.landlord.backups import BackupsController
from web.landlord.dashboard import DashboardController
from web.landlord.jobs import JobsController
from web.landlord.move_plans import MovePlansController
from web.landlord.moves import MovesController
from web.landlord.restores import RestoresController
from web.landlord.rollouts import RolloutsController
from web.landlord.switch import SwitchController
from web.landlord.tenants import TenantsController
from web.landlord.users import UsersController
from web.limits import MAX_BODY_BYTES, CheckedRequest, NoNulInAddress, ids_in_range
from web.not_found import unknown_address
from web.proxies import TrustedProxyMiddleware
from web.rate_limits import COUNTED_IN_TENANT, RateLimitMiddleware, RefusedAtTheDoor, RefusedLately
from web.sessions import RotatingSessionConfig
from web.stores import LandlordStore
from web.switching import SwitchMiddleware, active_switch
from web.tenancy.scope import HostDirectory, TenantHosts, TenantScopeMiddleware, provide_tenant_data
from web.tenant.backups import TenantBackupsController
from web.tenant.data import TenantDataController
from web.tenant.modules import TenantModulesController
from web.tenant.people import TenantPeopleController
from web.tenant.portal import TenantPortalController
from web.tenant.settings import TenantSettingsController
from web.tenant.units import TenantUnitsController
from workers.runner import JobQueue

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent
SWAGGER = "/static/vendor/swagger-ui-5.35.0"


def _freeze_what_is_built(app: Litestar) -> None:
    """Everything built to serve (modules, the app, its routes and caches) leaves the garbage
    collector's watch: it lives as long as the process, and a full collection would otherwise walk
    it all again, a pause of milliseconds that lands on whichever request is running (with a
    flood of refusals, each an exception, collections come often: benchmarks.limits)."""
    _freeze_once()


@cache
def _freeze_once() -> None:
    # Once a process: one that builds many apps (the tests) freezes what the first one built.
    gc.collect()
    gc.freeze()


@cache
def _template_engine() -> JinjaTemplateEngine:
    """One engine per process: its templates are compiled once, on first use, and every app built
    in the process (the tests build about a thousand) renders with them. Nothing in it belongs to
    one app: the helpers it holds find the app through the request they render for."""
    engine = JinjaTemplateEngine(directory=[WEB_DIR / "templates", *sorted(WEB_DIR.glob("*/templates"))])
    engine.engine.globals["current_user"] = current_user
    engine.engine.globals["active_switch"] = active_switch
    engine.engine.globals["now"] = utcnow
    engine.engine.globals["when"] = when
    return engine


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Tenantry API",
        version="1",
        description="Automation for everything the portals do. Send `Authorization: Bearer <token>`; "
        "create tokens with `tenantry tokens create`.",
        path="/api/docs",
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER}/swagger-ui-standalone-preset.js",
                favicon="",  # Litestar's default favicon is fetched from a CDN
            )
        ],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        security=[{"bearer": []}],
    )


@dataclass(frozen=True)
class AppShape:
    """The settings an app's routes and middleware are built from. Building them is most of the
    cost of an app (Litestar reads every handler's signature); an app whose installation has
    stopped serving can be attached to another installation of the same shape (`attach`)."""

    secret_key: str
    static_dir: Path
    session_max_age_seconds: int
    secure_cookies: bool
    base_domain: str | None
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    client_address_header: str

    @classmethod
    def of(cls, settings: Settings) -> AppShape:
        return cls(
            settings.secret_key,
            settings.static_dir,
            settings.session_max_age_seconds,
            settings.secure_cookies,
            settings.base_domain,
            settings.trusted_proxies,
            settings.client_address_header,
        )


def create_app(settings: Settings, job_queue: JobQueue | None = None) -> Litestar:
    """The app serving the installation `settings` describe."""
    app = build_app(AppShape.of(settings))
    attach(app, settings, job_queue)
    return app


def attach(app: Litestar, settings: Settings, job_queue: JobQueue | None = None) -> None:
    """Points an app built by `build_app` at an installation: its landlord database, job queue,
    tenant connections, rate limit counters and the caches kept of them, all made anew here and
    let go when the app shuts down. Only an app that is not serving may be attached."""
    assert AppShape.of(settings) == app.state["shape"], "an app serves installations of its own shape"
    database = Database(settings.database_url)
    # One mark of the landlord for every answer kept from it (who is calling, sessions).
    marks = LandlordMarks(database.engine)
    queue = job_queue or JobQueue(settings)
    send_jobs_on_commit(database, queue)  # a job a request records goes to the workers on commit
    app.stores = StoreRegistry(
        {
            "sessions": LandlordStore(database, "sessions", marks),
            "sign_in_failures": LandlordStore(database, "sign_in_failures", marks),
        }
    )
    app.state = State(
        {
            "shape": app.state["shape"],
            "settings": settings,
            "database": database,
            "marks": marks,
            "identities": Identities(database, marks),
            "job_queue": queue,
            "tenant_connections": TenantConnections(settings.tenant_connections),
            "rate_limits": counters_at(settings.rate_limits_url, settings.broker_namespace),
            "refused_lately": RefusedLately(),
            "hosts": HostDirectory(database),
        }
    )


async def _start_embedded_worker(app: Litestar) -> None:
    settings: Settings = app.state.settings
    if not settings.broker_is_embedded:
        return
    queue: JobQueue = app.state.job_queue
    queue.start_worker()
    try:
        await queue.resend_unfinished_jobs(app.state.database)
    except Exception:
        log.exception("could not send unfinished jobs again; /healthz reports the database")


async def _shut_down(app: Litestar) -> None:
    app.state.job_queue.stop()
    await app.state.tenant_connections.dispose()
    await app.state.rate_limits.close()
    await app.state.marks.close()
    await app.state.database.dispose()


def build_app(shape: AppShape) -> Litestar:
    """The routes and middleware, not yet attached to an installation (`attach`)."""
    # Every tenant route resolves its tenant and scope in one middleware, and gets its data
    # through the session that middleware bound: the portal by path (or host), the API by token.
    in_tenant_scope: dict[str, Any] = {
        "middleware": [TenantScopeMiddleware()],
        "dependencies": {"tenant_data": Provide(provide_tenant_data)},
        "opt": COUNTED_IN_TENANT,
    }
    tenant_portal = Router(
        path="/t/{slug:str}",
        route_handlers=[
            TenantPortalController,
            TenantUnitsController,
            TenantDataController,
            TenantModulesController,
            TenantBackupsController,
            TenantPeopleController,
            TenantSettingsController,
        ],
        **in_tenant_scope,
    )
    tenant_api = Router(
        path="/api/v1/tenant",
        route_handlers=[TenantApiController, TenantModulesApiController, TenantPeopleApiController],
        **in_tenant_scope,
    )
    sessions = RotatingSessionConfig(
        store="sessions",
        max_age=shape.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=shape.secure_cookies,
        exclude=["^/static/", "^/api/", "^/healthz"],
    )
    api = Router(
        path="/api/v1",
        route_handlers=[
            TenantsApiController,
            TenantLifecycleApiController,
            ProvisioningApiController,
            CatalogueApiController,
            BackupsApiController,
            BackupScheduleApiController,
            RestoresApiController,
            MovesApiController,
            MovePlansApiController,
            RolloutsApiController,
        ],
    )
    app = Litestar(
        route_handlers=[
            AccountController,
            DashboardController,
            JobsController,
            TenantsController,
            RolloutsController,
            BackupsController,
            RestoresController,
            MovesController,
            MovePlansController,
            BackupScheduleController,
            UsersController,
            AuditController,
            SwitchController,
            api,
            tenant_api,
            tenant_portal,
            healthz,
            unknown_address,
            create_static_files_router(
                path="/static", directories=[shape.static_dir], include_in_schema=False
            ),
        ],
        middleware=[
            RefusedAtTheDoor(),
            NoNulInAddress(),
            sessions.middleware,
            IdentityMiddleware(),
            PasswordFirstMiddleware(),
            SwitchMiddleware(),
            RateLimitMiddleware(),
        ],
        request_class=CheckedRequest,
        request_max_body_size=MAX_BODY_BYTES,
        before_request=ids_in_range,
        csrf_config=CSRFConfig(
            secret=shape.secret_key,
            cookie_httponly=True,
            cookie_secure=shape.secure_cookies,
            exclude=["^/api/", "^/healthz"],
        ),
        plugins=[HTMXPlugin(), ApiErrorsDocumented()],
        template_config=TemplateConfig(instance=_template_engine()),
        openapi_config=_openapi_config(),
        dependencies={"db_session": Provide(provide_db_session)},
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[_start_embedded_worker, _freeze_what_is_built],
        on_shutdown=[_shut_down],
        state=State({"shape": shape}),
    )
    app.asgi_handler = TenantHosts(app.asgi_handler, shape.base_domain, lambda: app.state.hosts)
    if shape.trusted_proxies:  # outermost: all the app sees is the client's own address
        app.asgi_handler = TrustedProxyMiddleware(
            app.asgi_handler, shape.trusted_proxies, shape.client_address_header
        )
    return app
