"""Every route of the app, called by tenant A's people with tenant B's identifiers: each one is
refused, says nothing of B, leaves B as it was, and the attempts on B are on B's audit trail.

`ROUTES` says how each route is filled with B's identifiers (path, query or body) and
`NO_IDENTIFIERS` lists the routes that take none; a route in neither fails the sweep, so a new
route is covered here before it ships. Every tenant route must also declare who in the tenant may
use it (`tenant_member` or `tenant_admin`), and a member is refused every one for admins.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from litestar.types import Guard
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import request_backup
from services.backups.content import summarise_store
from services.models import AuditEntry, Backup, BackupFormat, Job, Membership, Tenant
from services.models.landlord import LandlordBase
from services.settings import Settings
from services.tenancy.security import CROSS_TENANT
from services.tenancy.stores import location_of
from tests.support import (
    Credentials,
    LandlordReader,
    app_for,
    before_each_statement,
    csrf_token,
    landlord_reader,
    run_db,
    signed_in,
)
from tests.web.portal import add_token, assert_no_trace, portal
from tests.web.tenant_world import (
    add_admin,
    add_member,
    add_rows,
    add_units,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
    run_tenant_job,
)
from web.tenancy.guards import tenant_admin, tenant_member

A, B = "kingfisher-club", "otter-rescue"
#: What only B has: its name, its units, its rows, its admin. None may reach A's people.
B_MARKERS = ("Otter Rescue", "Weir Watch", "Holt Keepers", "Secret Holt Rota", "warden@otter.example")
#: A refusal: a role refusal (403), or "not found" for what is not the caller's (404). Never 401 for
#: a signed-in caller, but it would still be a refusal.
REFUSED = {401, 403, 404}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Litestar answers these itself for every route: nothing of a tenant's behind them.
NOT_PROBED = {"OPTIONS", "HEAD"}
#: Where the tenant's routes are: its portal, and the API of tenant tokens.
TENANT_ROUTES = ("/t/{slug:str}", "/api/v1/tenant/")
TENANT_ROLES = (tenant_admin, tenant_member)

#: Why a refused attempt lands on the audit trail, always against B: the door refused B's slug, the
#: API a B-owned tenant or job, or A's scope could not find a row id that is B's.
AGAINST_B, FOREIGN_ROW = "against B", "foreign row"


@dataclass(frozen=True)
class World:
    isolation: str
    a_id: int
    b_id: int
    b_unit: int
    b_group: int
    b_jobs: list[int]
    b_backup: int
    b_admin: int


@dataclass(frozen=True)
class Probe:
    path: str
    #: Where the attempt is recorded; None for a refusal by role, before anything is looked up.
    recorded: str | None = None
    #: Only these methods of the route (None: every one).
    methods: frozenset[str] | None = None
    #: A's own slug with B's row ids: only in a shared store, where an id names one row of one
    #: tenant (in a store of A's own, B's id may well name a row of A's).
    shared_only: bool = False
    #: A member is refused by role (403) before anything is looked up: nothing to record.
    for_admins: bool = False
    #: Answered for A's own tenant: 200, with nothing of B in it.
    own_data: bool = False


@dataclass(frozen=True)
class Fill:
    probes: Callable[[World], list[Probe]]
    #: The body each unsafe method sends: a form (portal, with a CSRF token) or JSON (API).
    bodies: Mapping[str, Callable[[World], dict[str, Any]]] = field(default_factory=dict)


def _body(**values: Any) -> Callable[[World], dict[str, Any]]:
    return lambda _world: values


ROUTES: dict[str, Fill] = {
    # The tenant portal. B's slug is refused at the door (404, recorded against B), whoever asks;
    # A's slug with B's ids reaches the handler, which must not find them.
    "/t/{slug:str}": Fill(lambda w: [Probe(f"/t/{B}", AGAINST_B)]),
    "/t/{slug:str}/units": Fill(
        lambda w: [
            Probe(f"/t/{B}/units", AGAINST_B),
            Probe(
                f"/t/{A}/units", FOREIGN_ROW, methods=frozenset({"POST"}), shared_only=True, for_admins=True
            ),
        ],
        bodies={"POST": lambda w: {"name": "Annexed", "parent_id": w.b_unit, "kind": "unit"}},
    ),
    "/t/{slug:str}/units/{unit_id:int}/rename": Fill(
        lambda w: [
            Probe(f"/t/{B}/units/{w.b_unit}/rename", AGAINST_B),
            Probe(f"/t/{A}/units/{w.b_unit}/rename", FOREIGN_ROW, shared_only=True, for_admins=True),
        ],
        bodies={"POST": _body(name="Annexed")},
    ),
    "/t/{slug:str}/units/{unit_id:int}/move": Fill(
        lambda w: [
            Probe(f"/t/{B}/units/{w.b_unit}/move", AGAINST_B),
            Probe(f"/t/{A}/units/{w.b_unit}/move", FOREIGN_ROW, shared_only=True, for_admins=True),
        ],
        bodies={"POST": lambda w: {"new_parent_id": w.b_unit}},
    ),
    "/t/{slug:str}/units/{unit_id:int}/delete": Fill(
        lambda w: [
            Probe(f"/t/{B}/units/{w.b_unit}/delete", AGAINST_B),
            Probe(f"/t/{A}/units/{w.b_unit}/delete", FOREIGN_ROW, shared_only=True, for_admins=True),
        ],
        bodies={"POST": _body()},
    ),
    # People are named by their landlord account id, the same in every store: B's admin's id is
    # "not found" in A's portal and recorded against B, whatever the isolation.
    "/t/{slug:str}/people": Fill(
        lambda w: [
            Probe(f"/t/{B}/people", AGAINST_B),
            Probe(
                f"/t/{A}/people", FOREIGN_ROW, methods=frozenset({"POST"}), shared_only=True, for_admins=True
            ),
        ],
        bodies={
            "POST": lambda w: {
                "email": "mole@kingfisher.example",
                "role": "tenant_member",
                "unit_ids": w.b_unit,
            }
        },
    ),
    "/t/{slug:str}/people/{account_id:int}": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}", FOREIGN_ROW, for_admins=True),
        ]
    ),
    "/t/{slug:str}/people/{account_id:int}/role": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}/role", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}/role", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": _body(role="tenant_member")},
    ),
    "/t/{slug:str}/people/{account_id:int}/units": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}/units", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}/units", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": lambda w: {"unit_ids": w.b_unit}},
    ),
    "/t/{slug:str}/people/{account_id:int}/deactivate": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}/deactivate", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}/deactivate", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": _body()},
    ),
    "/t/{slug:str}/people/{account_id:int}/reactivate": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}/reactivate", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}/reactivate", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": _body()},
    ),
    "/t/{slug:str}/people/{account_id:int}/password-reset": Fill(
        lambda w: [
            Probe(f"/t/{B}/people/{w.b_admin}/password-reset", AGAINST_B),
            Probe(f"/t/{A}/people/{w.b_admin}/password-reset", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": _body()},
    ),
    "/t/{slug:str}/settings": Fill(
        lambda w: [Probe(f"/t/{B}/settings", AGAINST_B)],
        bodies={"POST": _body(name="Annexed", timezone="UTC", accent_colour="#000000")},
    ),
    "/t/{slug:str}/settings/appearance.css": Fill(
        lambda w: [Probe(f"/t/{B}/settings/appearance.css", AGAINST_B)]
    ),
    "/t/{slug:str}/data": Fill(lambda w: [Probe(f"/t/{B}/data", AGAINST_B)]),
    "/t/{slug:str}/data/{table:str}": Fill(
        lambda w: [Probe(f"/t/{B}/data/groups?q=Secret", AGAINST_B)],
        bodies={"POST": lambda w: {"name": "Annexed", "unit_id": w.b_unit}},
    ),
    "/t/{slug:str}/data/{table:str}/new": Fill(lambda w: [Probe(f"/t/{B}/data/groups/new", AGAINST_B)]),
    "/t/{slug:str}/data/{table:str}/{record_id:int}/edit": Fill(
        lambda w: [
            Probe(f"/t/{B}/data/groups/{w.b_group}/edit", AGAINST_B),
            Probe(f"/t/{A}/data/groups/{w.b_group}/edit", FOREIGN_ROW, shared_only=True),
        ],
        bodies={"POST": _body(name="Annexed")},
    ),
    "/t/{slug:str}/data/{table:str}/{record_id:int}/delete": Fill(
        lambda w: [
            Probe(f"/t/{B}/data/groups/{w.b_group}/delete", AGAINST_B),
            Probe(f"/t/{A}/data/groups/{w.b_group}/delete", FOREIGN_ROW, shared_only=True),
        ],
        bodies={"POST": _body()},
    ),
    "/t/{slug:str}/data/{table:str}/{record_id:int}": Fill(
        lambda w: [
            Probe(f"/t/{B}/data/groups/{w.b_group}", AGAINST_B),
            Probe(f"/t/{A}/data/groups/{w.b_group}", FOREIGN_ROW, shared_only=True),
        ]
    ),
    "/t/{slug:str}/audit": Fill(lambda w: [Probe(f"/t/{B}/audit", AGAINST_B)]),
    # Module changes: jobs live in the landlord database, so B's job id always names B.
    "/t/{slug:str}/modules": Fill(lambda w: [Probe(f"/t/{B}/modules", AGAINST_B)]),
    "/t/{slug:str}/modules/{module:str}/enable": Fill(
        lambda w: [Probe(f"/t/{B}/modules/documents/enable", AGAINST_B)],
        bodies={"POST": _body(with_required="yes")},
    ),
    "/t/{slug:str}/modules/{module:str}/disable": Fill(
        lambda w: [Probe(f"/t/{B}/modules/events/disable", AGAINST_B)],
        bodies={"POST": _body(keep_data="drop")},
    ),
    "/t/{slug:str}/modules/jobs/{job_id:int}": Fill(
        lambda w: [
            Probe(f"/t/{B}/modules/jobs/{w.b_jobs[0]}", AGAINST_B),
            *(Probe(f"/t/{A}/modules/jobs/{job}", FOREIGN_ROW, for_admins=True) for job in w.b_jobs),
        ]
    ),
    # Backups live in the landlord database: B's backup id always names B, whatever the store.
    "/t/{slug:str}/backups": Fill(
        lambda w: [Probe(f"/t/{B}/backups", AGAINST_B)], bodies={"POST": _body(format=BackupFormat.PORTABLE)}
    ),
    "/t/{slug:str}/backups/{backup_id:int}/download": Fill(
        lambda w: [
            Probe(f"/t/{B}/backups/{w.b_backup}/download", AGAINST_B),
            Probe(f"/t/{A}/backups/{w.b_backup}/download", FOREIGN_ROW, for_admins=True),
        ]
    ),
    "/t/{slug:str}/backups/{backup_id:int}/restore": Fill(
        lambda w: [
            Probe(f"/t/{B}/backups/{w.b_backup}/restore", AGAINST_B),
            Probe(f"/t/{A}/backups/{w.b_backup}/restore", FOREIGN_ROW, for_admins=True),
        ],
        bodies={"POST": _body(confirm=A)},
    ),
    # The landlord portal: closed to tenant people whatever the identifiers (403 before any lookup).
    "/tenants": Fill(
        lambda w: [
            Probe(f"/tenants?q={B}", methods=frozenset({"GET"})),
            Probe("/tenants", methods=frozenset({"POST"})),
        ],
        bodies={"POST": _body(slug=B, name="Otter Rescue", template="community_group")},
    ),
    "/tenants/{slug:str}": Fill(lambda w: [Probe(f"/tenants/{B}")]),
    "/tenants/{slug:str}/retry": Fill(lambda w: [Probe(f"/tenants/{B}/retry")], bodies={"POST": _body()}),
    "/tenants/{slug:str}/suspend": Fill(
        lambda w: [Probe(f"/tenants/{B}/suspend")], bodies={"POST": _body(reason="probing")}
    ),
    "/tenants/{slug:str}/resume": Fill(lambda w: [Probe(f"/tenants/{B}/resume")], bodies={"POST": _body()}),
    "/tenants/{slug:str}/delete": Fill(
        lambda w: [Probe(f"/tenants/{B}/delete")], bodies={"POST": _body(confirm=B)}
    ),
    "/tenants/{slug:str}/undelete": Fill(
        lambda w: [Probe(f"/tenants/{B}/undelete")], bodies={"POST": _body()}
    ),
    "/tenants/{slug:str}/first-admin": Fill(
        lambda w: [Probe(f"/tenants/{B}/first-admin")],
        bodies={"POST": _body(admin_email="mole@otter.example")},
    ),
    "/tenants/{slug:str}/drift": Fill(lambda w: [Probe(f"/tenants/{B}/drift")], bodies={"POST": _body()}),
    "/tenants/{slug:str}/plan": Fill(
        lambda w: [Probe(f"/tenants/{B}/plan")], bodies={"POST": _body(plan="unlimited")}
    ),
    "/tenants/{slug:str}/rate-limits": Fill(
        lambda w: [Probe(f"/tenants/{B}/rate-limits")], bodies={"POST": _body(each_read="1")}
    ),
    "/tenants/{slug:str}/custom/{action:str}": Fill(
        lambda w: [Probe(f"/tenants/{B}/custom/apply"), Probe(f"/tenants/{B}/custom/rollback")],
        bodies={"POST": _body()},
    ),
    "/tenants/{slug:str}/backups": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups")], bodies={"POST": _body(format=BackupFormat.PORTABLE)}
    ),
    "/tenants/{slug:str}/backups/{backup_id:int}/verify": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups/{w.b_backup}/verify")], bodies={"POST": _body()}
    ),
    "/tenants/{slug:str}/backups/{backup_id:int}/restore": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups/{w.b_backup}/restore")], bodies={"POST": _body(confirm=B)}
    ),
    "/tenants/{slug:str}/backups/{backup_id:int}/copy": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups/{w.b_backup}/copy")],
        bodies={"POST": _body(slug="otter-copy", name="Otter copy")},
    ),
    "/tenants/{slug:str}/move": Fill(
        lambda w: [Probe(f"/tenants/{B}/move")], bodies={"POST": _body(to="sqlite:shared", confirm=B)}
    ),
    "/tenants/{slug:str}/moves/{move_id:int}/back": Fill(
        lambda w: [Probe(f"/tenants/{B}/moves/1/back")], bodies={"POST": _body()}
    ),
    "/tenants/{slug:str}/merge": Fill(
        lambda w: [Probe(f"/tenants/{B}/merge?into={A}")], bodies={"POST": _body(into=A, confirm=B)}
    ),
    "/tenants/{slug:str}/split": Fill(
        lambda w: [Probe(f"/tenants/{B}/split?unit={w.b_unit}&into=otter-split")],
        bodies={"POST": lambda w: {"unit": str(w.b_unit), "into": "otter-split", "confirm": B}},
    ),
    "/tenants/{slug:str}/backups/schedule": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups/schedule")],
        bodies={"POST": _body(daily_at="02:00", format=BackupFormat.PORTABLE, keep="7")},
    ),
    "/tenants/{slug:str}/backups/schedule/clear": Fill(
        lambda w: [Probe(f"/tenants/{B}/backups/schedule/clear")], bodies={"POST": _body()}
    ),
    "/tenants/{slug:str}/switch": Fill(
        lambda w: [Probe(f"/tenants/{B}/switch")], bodies={"POST": _body(reason="Helping a neighbour")}
    ),
    "/users": Fill(lambda w: [Probe("/users")], bodies={"POST": _body(email="warden@otter.example")}),
    "/users/{user_id:int}/switching": Fill(
        lambda w: [Probe(f"/users/{w.b_admin}/switching")], bodies={"POST": _body(allowed="yes")}
    ),
    "/users/{user_id:int}/password-reset": Fill(
        lambda w: [Probe(f"/users/{w.b_admin}/password-reset")], bodies={"POST": _body()}
    ),
    # A token's scope names a tenant: one not the caller's is "not found", recorded against it.
    "/account/tokens": Fill(
        lambda w: [Probe("/account/tokens", AGAINST_B, methods=frozenset({"POST"}))],
        bodies={"POST": _body(name="probe", scope=B, expires="30")},
    ),
    "/audit": Fill(lambda w: [Probe(f"/audit?tenant={B}")]),
    "/audit.csv": Fill(lambda w: [Probe(f"/audit.csv?tenant={B}")]),
    # Rollouts are the platform's: B's slug can only be in the tenants a rollout selects.
    "/rollouts": Fill(lambda w: [Probe("/rollouts")], bodies={"POST": _body(tenants=B)}),
    "/rollouts/plan": Fill(lambda w: [Probe("/rollouts/plan")], bodies={"POST": _body(tenants=B)}),
    "/rollouts/{rollout_id:int}": Fill(lambda w: [Probe("/rollouts/1")]),
    "/rollouts/{rollout_id:int}/progress": Fill(lambda w: [Probe("/rollouts/1/progress")]),
    "/rollouts/{rollout_id:int}/pause": Fill(
        lambda w: [Probe("/rollouts/1/pause")], bodies={"POST": _body()}
    ),
    "/rollouts/{rollout_id:int}/resume": Fill(
        lambda w: [Probe("/rollouts/1/resume")], bodies={"POST": _body()}
    ),
    "/rollouts/{rollout_id:int}/cancel": Fill(
        lambda w: [Probe("/rollouts/1/cancel")], bodies={"POST": _body()}
    ),
    "/rollouts/{rollout_id:int}/rollback": Fill(
        lambda w: [Probe("/rollouts/1/rollback")], bodies={"POST": _body()}
    ),
    # Unknown addresses under B's portal are nobody's: 404 before any tenant is looked up.
    "/{address:path}": Fill(lambda w: [Probe(f"/t/{B}/no-such-page/{w.b_unit}")]),
    # The landlord API: a tenant token reads its own tenant and jobs only; the refusal is the same
    # whether the other tenant exists, and recorded against it when it does.
    "/api/v1/tenants/{slug:str}": Fill(
        lambda w: [
            Probe(f"/api/v1/tenants/{B}", AGAINST_B, methods=frozenset({"GET"})),
            Probe(f"/api/v1/tenants/{B}?confirm={B}", methods=frozenset({"DELETE"})),
        ],
        bodies={"DELETE": _body()},
    ),
    "/api/v1/tenants/{slug:str}/suspend": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/suspend")], bodies={"POST": _body(reason="probing")}
    ),
    "/api/v1/tenants/{slug:str}/resume": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/resume")], bodies={"POST": _body()}
    ),
    "/api/v1/tenants/{slug:str}/undelete": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/undelete")], bodies={"POST": _body()}
    ),
    "/api/v1/jobs/{job_id:int}": Fill(
        lambda w: [Probe(f"/api/v1/jobs/{job}", AGAINST_B) for job in w.b_jobs]
    ),
    "/api/v1/tenants": Fill(
        lambda w: [
            Probe(f"/api/v1/tenants?q={B}", methods=frozenset({"GET"})),
            Probe("/api/v1/tenants", methods=frozenset({"POST"})),
        ],
        bodies={"POST": _body(slug=B, name="Otter Rescue", template="community_group")},
    ),
    "/api/v1/tenants/{slug:str}/backups": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/backups")],
        bodies={"POST": _body(format=BackupFormat.PORTABLE)},
    ),
    "/api/v1/tenants/{slug:str}/backups/{backup_id:int}/restore": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/backups/{w.b_backup}/restore")],
        bodies={"POST": _body(into={"slug": "otter-copy", "name": "Otter copy"})},
    ),
    "/api/v1/tenants/{slug:str}/moves": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/moves")], bodies={"POST": _body(isolation="shared")}
    ),
    "/api/v1/tenants/{slug:str}/moves/{move_id:int}": Fill(lambda w: [Probe(f"/api/v1/tenants/{B}/moves/1")]),
    "/api/v1/tenants/{slug:str}/moves/{move_id:int}/back": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/moves/1/back")], bodies={"POST": _body()}
    ),
    "/api/v1/tenants/{slug:str}/splits": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/splits")],
        bodies={"POST": lambda w: {"unit": str(w.b_unit), "into": "otter-split"}},
    ),
    "/api/v1/tenants/{slug:str}/merges": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/merges")], bodies={"POST": _body(into=A)}
    ),
    "/api/v1/tenants/{slug:str}/merges/dry-run": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/merges/dry-run")], bodies={"POST": _body(into=A)}
    ),
    "/api/v1/tenants/{slug:str}/splits/dry-run": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/splits/dry-run")],
        bodies={"POST": lambda w: {"unit": str(w.b_unit), "into": "otter-split"}},
    ),
    "/api/v1/tenants/{slug:str}/backups/schedule": Fill(
        lambda w: [Probe(f"/api/v1/tenants/{B}/backups/schedule")],
        bodies={"PUT": _body(daily_at="02:00", format=BackupFormat.PORTABLE, keep=7), "DELETE": _body()},
    ),
    "/api/v1/rollouts": Fill(
        lambda w: [Probe("/api/v1/rollouts")], bodies={"POST": _body(selection={"tenants": [B]})}
    ),
    "/api/v1/rollouts/plan": Fill(
        lambda w: [Probe("/api/v1/rollouts/plan")], bodies={"POST": _body(selection={"tenants": [B]})}
    ),
    "/api/v1/rollouts/{rollout_id:int}": Fill(lambda w: [Probe("/api/v1/rollouts/1")]),
    "/api/v1/rollouts/{rollout_id:int}/pause": Fill(
        lambda w: [Probe("/api/v1/rollouts/1/pause")], bodies={"POST": _body()}
    ),
    "/api/v1/rollouts/{rollout_id:int}/resume": Fill(
        lambda w: [Probe("/api/v1/rollouts/1/resume")], bodies={"POST": _body()}
    ),
    "/api/v1/rollouts/{rollout_id:int}/cancel": Fill(
        lambda w: [Probe("/api/v1/rollouts/1/cancel")], bodies={"POST": _body()}
    ),
    "/api/v1/rollouts/{rollout_id:int}/rollback": Fill(
        lambda w: [Probe("/api/v1/rollouts/1/rollback")], bodies={"POST": _body()}
    ),
    # Move plans are the platform's: B's slug can only be in the tenants a plan selects.
    "/move-plans": Fill(
        lambda w: [Probe("/move-plans")], bodies={"POST": _body(tenants=B, to_isolation="shared")}
    ),
    "/move-plans/dry-run": Fill(
        lambda w: [Probe("/move-plans/dry-run")], bodies={"POST": _body(tenants=B, to_isolation="shared")}
    ),
    "/move-plans/{plan_id:int}": Fill(lambda w: [Probe("/move-plans/1")]),
    "/move-plans/{plan_id:int}/progress": Fill(lambda w: [Probe("/move-plans/1/progress")]),
    "/move-plans/{plan_id:int}/pause": Fill(
        lambda w: [Probe("/move-plans/1/pause")], bodies={"POST": _body()}
    ),
    "/move-plans/{plan_id:int}/resume": Fill(
        lambda w: [Probe("/move-plans/1/resume")], bodies={"POST": _body()}
    ),
    "/move-plans/{plan_id:int}/cancel": Fill(
        lambda w: [Probe("/move-plans/1/cancel")], bodies={"POST": _body()}
    ),
    "/api/v1/move-plans": Fill(
        lambda w: [Probe("/api/v1/move-plans")],
        bodies={"POST": _body(isolation="shared", selection={"tenants": [B]})},
    ),
    "/api/v1/move-plans/dry-run": Fill(
        lambda w: [Probe("/api/v1/move-plans/dry-run")],
        bodies={"POST": _body(isolation="shared", selection={"tenants": [B]})},
    ),
    "/api/v1/move-plans/{plan_id:int}": Fill(lambda w: [Probe("/api/v1/move-plans/1")]),
    "/api/v1/move-plans/{plan_id:int}/pause": Fill(
        lambda w: [Probe("/api/v1/move-plans/1/pause")], bodies={"POST": _body()}
    ),
    "/api/v1/move-plans/{plan_id:int}/resume": Fill(
        lambda w: [Probe("/api/v1/move-plans/1/resume")], bodies={"POST": _body()}
    ),
    "/api/v1/move-plans/{plan_id:int}/cancel": Fill(
        lambda w: [Probe("/api/v1/move-plans/1/cancel")], bodies={"POST": _body()}
    ),
    # The tenant API: the tenant is the token's, so only row ids can name B's data.
    "/api/v1/tenant/data/{table:str}/{record_id:int}": Fill(
        lambda w: [Probe(f"/api/v1/tenant/data/groups/{w.b_group}", FOREIGN_ROW, shared_only=True)],
        bodies={"PUT": _body(name="Annexed"), "PATCH": _body(name="Annexed"), "DELETE": _body()},
    ),
    # A new row names B only by a reference in its body, which is refused as a mistake in that
    # field (422, the same as for an id that does not exist) and recorded against B: see
    # tests/web/test_tenant_data.py. This sweep's refusals are 401/403/404, so only GET is probed.
    "/api/v1/tenant/data/{table:str}": Fill(
        lambda w: [
            Probe(
                "/api/v1/tenant/data/groups?q=Secret%20Holt%20Rota", methods=frozenset({"GET"}), own_data=True
            )
        ],
        bodies={"POST": lambda w: {"name": "Annexed", "unit_id": w.b_unit}},
    ),
    # Its GET names nobody (A's own list is looked at in A_OWN_API); an invitation names units.
    "/api/v1/tenant/people": Fill(
        lambda w: [
            Probe(
                "/api/v1/tenant/people",
                FOREIGN_ROW,
                methods=frozenset({"POST"}),
                shared_only=True,
                for_admins=True,
            )
        ],
        bodies={"POST": lambda w: {"email": "mole@kingfisher.example", "unit_ids": [w.b_unit]}},
    ),
}

#: Routes that take no tenant's identifiers anywhere: sign-in, the caller's own home and account, forms and
#: catalogues common to all, the token's own units, health, static files and the API docs.
NO_IDENTIFIERS = {
    "/login",
    "/logout",
    "/account",
    "/account/password",
    "/account/tokens/{token_id:int}/revoke",
    "/account/sessions",
    "/account/sessions/sign-out-elsewhere",
    "/",
    "/tenants/new",
    "/tenants/new/modules",
    "/tenants/export.csv",
    "/jobs",
    "/fleet",
    "/fleet/drift",
    "/rollouts/new",
    "/move-plans/new",
    "/api/v1/fleet",
    "/api/v1/fleet/drift",
    "/api/v1/warm-pool",
    "/switch/exit",
    "/api/v1/templates",
    "/api/v1/modules",
    "/api/v1/tenant/units",
    "/api/v1/tenant/modules",
    "/healthz",
    "/static/{file_path:path}",
    "/api/docs",
    "/api/docs/swagger",
    "/api/docs/{path:str}",
    "/api/docs/openapi.json",
    "/api/docs/oauth2-redirect.html",
}

#: A's own pages, looked at after the sweep: still A's, with nothing of B.
A_OWN_PAGES = [
    f"/t/{A}/",
    f"/t/{A}/units",
    f"/t/{A}/data/groups",
    f"/t/{A}/audit",
    f"/t/{A}/people",
    f"/t/{A}/settings",
]
A_OWN_API = [
    "/api/v1/tenant/units",
    "/api/v1/tenant/data/groups",
    f"/api/v1/tenants/{A}",
    "/api/v1/tenant/people",
]


# --- The world: tenants A and B -------------------------------------------------------------------


def _back_up(settings: Settings, slug: str) -> None:
    """A finished backup of the tenant, taken as a worker takes it."""

    async def back_up(session: AsyncSession, tenant: Tenant) -> Job:
        return (await request_backup(session, settings, tenant, BackupFormat.PORTABLE)).job

    run_tenant_job(settings, slug, back_up)


@dataclass(frozen=True)
class People:
    admin: Credentials
    member: Credentials
    b_admin: Credentials
    admin_token: str
    member_token: str


def build_world(settings: Settings, isolation: str) -> tuple[World, People]:
    a_id = provision(settings, A, isolation=isolation)
    b_id = provision(settings, B, isolation=isolation)
    a_units = add_units(settings, A, [("Harbourside", None)])
    add_rows(settings, A, "groups", [{"name": "Kingfisher Rowers", "unit_id": a_units["Harbourside"]}])
    b_units = add_units(settings, B, [("Weir Watch", None), ("Holt Keepers", "Weir Watch")])
    b_groups = add_rows(
        settings, B, "groups", [{"name": "Secret Holt Rota", "unit_id": b_units["Holt Keepers"]}]
    )
    b_admin = add_admin(settings, B, "warden@otter.example")
    admin = add_admin(settings, A, "admin@kingfisher.example")
    member = add_member(settings, A, "member@kingfisher.example", unit_ids=[a_units["Harbourside"]])
    people = People(
        admin, member, b_admin, add_token(settings, admin.email, A), add_token(settings, member.email, A)
    )
    _back_up(settings, B)

    async def ids(session: AsyncSession) -> World:
        b_jobs = list(await session.scalars(select(Job.id).where(Job.tenant_id == b_id).order_by(Job.id)))
        backup = await session.scalar(select(Backup.id).where(Backup.tenant_id == b_id))
        b_admin = await session.scalar(select(Membership.user_id).where(Membership.tenant_id == b_id))
        assert len(b_jobs) == 2 and backup is not None and b_admin is not None
        return World(isolation, a_id, b_id, b_units["Holt Keepers"], b_groups[0], b_jobs, backup, b_admin)

    return run_db(settings, ids), people


def state_of_b(settings: Settings, b_id: int) -> dict[str, Any]:
    """Everything of B's: its rows in its store (counted and hashed), and its landlord records."""

    def rows(result: Any) -> list[tuple[str, ...]]:
        return [tuple(map(str, row)) for row in result]

    async def landlord_rows(session: AsyncSession, table: Table, condition: Any) -> list[tuple[str, ...]]:
        return rows(
            await session.execute(select(table).where(condition).order_by(*table.primary_key.columns))
        )

    async def work(session: AsyncSession) -> dict[str, Any]:
        tables = LandlordBase.metadata.tables
        state: dict[str, Any] = {
            "tenants": await landlord_rows(session, tables["tenants"], tables["tenants"].c.id == b_id)
        }
        for table in LandlordBase.metadata.sorted_tables:
            if "tenant_id" in table.c and table.name != "audit_entries":
                state[table.name] = await landlord_rows(session, table, table.c.tenant_id == b_id)
        b_jobs = select(Job.id).where(Job.tenant_id == b_id)
        state["job_steps"] = await landlord_rows(
            session, tables["job_steps"], tables["job_steps"].c.job_id.in_(b_jobs)
        )
        b_people = select(Membership.user_id).where(Membership.tenant_id == b_id)
        state["users"] = await landlord_rows(session, tables["users"], tables["users"].c.id.in_(b_people))
        tenant = await session.get_one(Tenant, b_id)
        store = location_of(settings, tenant).open()
        try:
            async with store.engine.connect() as connection:
                state["store"] = await connection.run_sync(lambda sync: summarise_store(sync, tenant_id=b_id))
        finally:
            await store.dispose()
        return state

    return run_db(settings, work)


async def count_cross_tenant_entries(session: AsyncSession) -> Counter[int | None]:
    """The security.cross_tenant entries on the trail, by the tenant they were recorded against."""
    statement = select(AuditEntry.tenant_id, func.count()).where(AuditEntry.action == CROSS_TENANT)
    rows = await session.execute(statement.group_by(AuditEntry.tenant_id))
    return Counter({tenant_id: count for tenant_id, count in rows.all()})


def cross_tenant_entries(settings: Settings) -> Counter[int | None]:
    return run_db(settings, count_cross_tenant_entries)


# --- Walking the routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    probe: Probe
    body: dict[str, Any] | None


def calls(app: Litestar, world: World) -> list[Call]:
    """Every method of every route with identifiers, filled with B's, as the table says."""
    found = []
    for route in app.routes:
        if route.path in NO_IDENTIFIERS:
            continue
        assert route.path in ROUTES, f"{route.path} is new: say in ROUTES how B's identifiers fill it"
        fill = ROUTES[route.path]
        for method in sorted(route.methods - NOT_PROBED):
            body = fill.bodies[method](world) if method in UNSAFE else None
            for probe in fill.probes(world):
                if probe.methods is not None and method not in probe.methods:
                    continue
                if probe.shared_only and world.isolation != "shared":
                    continue
                found.append(Call(method, route.path, probe, body))
    return found


def send(client: TestClient[Any], call: Call, token: str | None) -> Response:
    if call.route.startswith("/api/"):
        headers = {"Authorization": f"Bearer {token}"}
        return client.request(
            call.method, call.probe.path, json=call.body, headers=headers, follow_redirects=False
        )
    data = {**call.body, "_csrf_token": csrf_token(client)} if call.body is not None else None
    return client.request(call.method, call.probe.path, data=data, follow_redirects=False)


def assert_nothing_of_b(response: Any, what: str) -> None:
    for marker in B_MARKERS:
        assert marker not in response.text, f"{what} showed B's {marker!r}"
    assert_no_trace(response.text)


@dataclass(frozen=True)
class Caller:
    name: str
    is_admin: bool
    #: A session for the portal's routes, or a tenant token for the API's.
    person: Credentials | None = None
    token: str | None = None


def try_route(
    client: TestClient[Any], landlord: LandlordReader, world: World, caller: Caller, call: Call
) -> int:
    """One call with B's identifiers: refused, silent about B, recorded as the table says. Where
    B's slug names the tenant, the answer is the one an unknown slug gets. Its status."""
    what = f"{call.method} {call.probe.path} as {caller.name}"
    entries = landlord.run(count_cross_tenant_entries)

    response = send(client, call, caller.token)

    by_role = call.probe.for_admins and not caller.is_admin
    if call.probe.own_data:
        assert response.status_code == 200, f"{what}: {response.status_code} {response.text}"
    else:
        assert response.status_code in ({403} if by_role else REFUSED), f"{what}: {response.text}"
    assert_nothing_of_b(response, what)
    recorded = landlord.run(count_cross_tenant_entries) - entries
    if by_role or call.probe.recorded is None:
        assert not recorded, f"{what} was recorded: {recorded}"
    elif call.probe.recorded == AGAINST_B:
        assert recorded == Counter({world.b_id: 1}), f"{what} recorded {recorded}"
    else:
        assert recorded.total() == 1 and set(recorded) <= {world.a_id, world.b_id}, f"{what}: {recorded}"
    if call.probe.recorded == AGAINST_B and f"/{B}" in call.probe.path:
        unknown = Probe(call.probe.path.replace(f"/{B}", "/no-such-club"))
        twin = send(client, Call(call.method, call.route, unknown, call.body), caller.token)
        assert (twin.status_code, twin.text) == (response.status_code, response.text), what
    return response.status_code


def declares(handler: BaseRouteHandler, guard: Guard) -> bool:
    """Whether `guard` is declared on the handler or a layer above it (its controller, router)."""
    # The guards as declared: resolve_guards() hands back wrapped ones.
    return any(guard in (layer.guards or []) for layer in handler.ownership_layers)


def test_every_tenant_route_declares_a_tenant_role(settings: Settings) -> None:
    """Who may use a tenant route is said on it: the door lets in every member, so a route declaring
    no role would be open to all of them."""
    with app_for(settings) as app:
        routes = app.routes
    tenant_routes = [
        (" ".join(sorted(methods)), route.path, handler)
        for route in routes
        if isinstance(route, HTTPRoute) and route.path.startswith(TENANT_ROUTES)
        for handler in route.route_handlers
        if (methods := handler.http_methods - NOT_PROBED)
    ]
    undeclared = [
        f"{methods} {path}"
        for methods, path, handler in tenant_routes
        if not any(declares(handler, role) for role in TENANT_ROLES)
    ]

    assert tenant_routes, "the tenant routes are found"
    assert not undeclared, f"declare tenant_member or tenant_admin on: {undeclared}"


def test_no_route_sends_its_guards_to_a_thread(settings: Settings) -> None:
    """Litestar runs a guard that is a plain function in a worker thread: a hand-off and back on
    every request for a few attribute reads. Every guard is a coroutine."""
    with app_for(settings) as app:
        routes = app.routes
    in_threads = {
        f"{guard.__module__}.{guard.__qualname__}"
        for route in routes
        for handler in (route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler])
        for layer in handler.ownership_layers
        for guard in layer.guards or []
        if not inspect.iscoroutinefunction(guard)
    }

    assert not in_threads, f"make these guards `async def`: {sorted(in_threads)}"


def for_admins_only(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every tenant route declaring `tenant_admin`, in A's tenant (its other
    path parameters filled with anything: the guard refuses before they are looked at)."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = route.path
        for name, parameter in route.path_parameters.items():
            path = path.replace("{" + parameter.full + "}", A if name == "slug" else "1")
        for handler in route.route_handlers:
            if declares(handler, tenant_admin):
                found += [(method, path) for method in sorted(handler.http_methods - NOT_PROBED)]
    return found


def test_a_member_is_refused_every_route_for_the_tenants_admins(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, A, isolation="shared")
    member = add_member(settings, A, "member@kingfisher.example")
    token = add_token(settings, member.email, A)
    with portal(settings) as client:
        walked = for_admins_only(client.app)
        assert {
            ("GET", f"/t/{A}/audit"),
            ("POST", f"/t/{A}/units"),
            ("POST", f"/t/{A}/settings"),
            ("GET", f"/t/{A}/people"),
            ("POST", f"/t/{A}/backups/1/restore"),
            ("GET", f"/t/{A}/modules"),
            ("PUT", "/api/v1/tenant/modules"),
            ("POST", "/api/v1/tenant/people"),
        } <= set(walked), "the walk reaches the admins' routes of every area"
        signed_in(client, member)
        form = {"_csrf_token": csrf_token(client)}
        assert client.get(f"/t/{A}/units").status_code == 200, "the member is in: refusals are by role"

        for method, path in walked:
            if path.startswith("/api/"):
                answer = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 403, f"{method} {path}: {answer.text}"
                assert answer.json()["detail"].startswith("Only the tenant's admins"), f"{method} {path}"
            else:
                page = client.request(method, path, data=form if method in UNSAFE else None)
                assert page.status_code == 403, f"{method} {path}: {page.text}"
                assert "<h1>Not allowed</h1>" in page.text, f"{method} {path}"


def test_the_table_covers_every_route_of_the_app(settings: Settings) -> None:
    with app_for(settings) as app:
        routes = app.routes
    paths = {route.path for route in routes}

    assert not set(ROUTES) & NO_IDENTIFIERS
    assert paths - set(ROUTES) - NO_IDENTIFIERS == set(), (
        "new routes: say in ROUTES how B's identifiers fill them"
    )
    assert set(ROUTES) | NO_IDENTIFIERS <= paths, "routes that are gone: take them out of the table"
    for route in routes:
        if route.path in ROUTES:
            missing = (route.methods & UNSAFE) - set(ROUTES[route.path].bodies)
            assert not missing, f"{sorted(missing)} {route.path} has no body in ROUTES"


@pytest.mark.parametrize("isolation", ["shared", "database"])
def test_a_tenants_people_are_refused_every_route_with_another_tenants_identifiers(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    world, people = build_world(settings, isolation)
    with portal(settings) as client:
        signed_in(client, people.b_admin)
        b_pages = "".join(client.get(f"/t/{B}{path}").text for path in ("/units", "/data/groups"))
        assert all(marker in b_pages for marker in B_MARKERS), "B's own admin sees what the sweep looks for"
    before = state_of_b(settings, world.b_id)
    callers = [
        Caller("A's admin", True, person=people.admin),
        Caller("A's member", False, person=people.member),
        Caller("A's admin's token", True, token=people.admin_token),
        Caller("A's member's token", False, token=people.member_token),
    ]
    expected: Counter[str] = Counter()
    seen: Counter[int] = Counter()

    with portal(settings) as client, landlord_reader(settings) as landlord:
        every_call = calls(client.app, world)
        for caller in callers:
            client.cookies.clear()
            if caller.person is not None:
                signed_in(client, caller.person)
            for call in every_call:
                if call.route.startswith("/api/") != (caller.token is not None):
                    continue
                seen[try_route(client, landlord, world, caller, call)] += 1
                if call.probe.recorded and not (call.probe.for_admins and not caller.is_admin):
                    expected[call.probe.recorded] += 1

        signed_in(client, people.admin)
        for path in A_OWN_PAGES:
            page = client.get(path)
            assert page.status_code == 200, f"{path}: {page.text}"
            assert_nothing_of_b(page, path)
        client.cookies.clear()
        for path in A_OWN_API:
            answer = client.get(path, headers={"Authorization": f"Bearer {people.admin_token}"})
            assert answer.status_code == 200, f"{path}: {answer.text}"
            assert_nothing_of_b(answer, path)

    assert set(seen) <= REFUSED | {200}, seen
    assert state_of_b(settings, world.b_id) == before, "B's data changed"

    async def against_b(session: AsyncSession) -> list[str]:
        statement = select(AuditEntry.actor_email).where(
            AuditEntry.action == CROSS_TENANT, AuditEntry.tenant_id == world.b_id
        )
        return list(await session.scalars(statement))

    actors = run_db(settings, against_b)
    assert len(actors) == expected[AGAINST_B] + expected[FOREIGN_ROW] > 0
    assert set(actors) == {people.admin.email, people.member.email}
    assert cross_tenant_entries(settings) == Counter({world.b_id: len(actors)}), "nothing against A"


@dataclass
class Answered:
    """The SQL statements one request ran, on every database, before and after its answer was sent."""

    before: list[str]
    after: list[str]


@contextmanager
def sql_around_answers(app: Litestar) -> Iterator[list[Answered]]:
    """While open, each request's statements, split at the moment its answer's last byte is sent."""
    statements: list[str] = []
    answers: list[Answered] = []
    inner = app.asgi_handler

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        start, sent_at = len(statements), None

        async def noting(message: Any) -> None:
            nonlocal sent_at
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                sent_at = len(statements)
            await send(message)

        await inner(scope, receive, noting)
        answers.append(Answered(statements[start:sent_at], statements[sent_at:]))

    app.asgi_handler = observed
    try:
        with before_each_statement(statements.append):
            yield answers
    finally:
        app.asgi_handler = inner


#: Who is calling (their session, account and memberships, or token) comes from memory or from the
#: landlord, as anything was committed since or not (services.landlord_cache): on PostgreSQL, by
#: anyone on the server. Never by the id asked for.
_IDENTITY_READS = ("FROM store_entries", "FROM users", "FROM memberships", "FROM api_tokens")


def beyond_identity(statements: list[str]) -> list[str]:
    return [sql for sql in statements if not any(read in sql for read in _IDENTITY_READS)]


def test_a_foreign_id_is_recorded_against_its_owner_after_an_answer_that_costs_what_nobodys_costs(
    settings: Settings, superadmin: Credentials
) -> None:
    a_id = provision(settings, A, isolation="shared")
    b_id = provision(settings, B, isolation="shared")
    foreign = add_rows(settings, B, "groups", [{"name": "Secret Holt Rota"}])[0]
    add_admin(settings, B, "warden@otter.example")
    admin = add_admin(settings, A, "admin@kingfisher.example")

    async def ids(session: AsyncSession) -> tuple[int, int]:
        b_job = await session.scalar(select(Job.id).where(Job.tenant_id == b_id))
        b_account = await session.scalar(select(Membership.user_id).where(Membership.tenant_id == b_id))
        assert b_job is not None and b_account is not None
        return b_job, b_account

    b_job, b_account = run_db(settings, ids)
    # B's row, job and person, each beside an id that names nothing anywhere.
    pairs = [
        (f"/t/{A}/data/groups/{foreign}", f"/t/{A}/data/groups/{foreign + 1000}"),
        (f"/t/{A}/modules/jobs/{b_job}", f"/t/{A}/modules/jobs/{b_job + 1000}"),
        (f"/t/{A}/people/{b_account}", f"/t/{A}/people/{b_account + 1000}"),
    ]
    with portal(settings) as client:
        signed_in(client, admin)
        for _, unused in pairs:  # a table's mapping is read from the store once, at its first use
            client.get(unused)

        with sql_around_answers(client.app) as answered:
            responses = [(client.get(theirs), client.get(nobodys)) for theirs, nobodys in pairs]
        audit = client.get(f"/t/{A}/audit").text

    for (path, _), (theirs, nobodys), their_sql, nobodys_sql in zip(
        pairs, responses, answered[::2], answered[1::2], strict=True
    ):
        assert theirs.status_code == nobodys.status_code == 404, path
        assert beyond_identity(their_sql.before) == beyond_identity(nobodys_sql.before), (
            f"{path}: other work before the answer"
        )
        assert any("INSERT INTO audit_entries" in sql for sql in their_sql.after), path
        assert not any("audit_entries" in sql for sql in nobodys_sql.after), path
    assert cross_tenant_entries(settings) == Counter({b_id: len(pairs)}), f"recorded against A ({a_id})"
    shown = [re.search(rf"/data/groups/{row}\b", audit) is not None for row in (foreign, foreign + 1000)]
    assert shown[0] == shown[1], "A's audit page tells B's row id from a missing one"
