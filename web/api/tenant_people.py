"""/api/v1/tenant/people: a tenant token's own tenant's people, for its admins. GET lists them
(role, units, whether active); POST invites someone and answers 201 with a generated password, in
that answer only: the new account's, or, when the email already has an account (one account joins
several tenants), one that does not apply, since that account keeps its own. The answer is the same
either way. Mistakes are 422 with an `errors` list naming each field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Body
from litestar.status_codes import HTTP_201_CREATED

from services.people.people import Person, invite, list_people
from services.tenancy.access import TENANT_MEMBER
from web.api.responses import error
from web.audit import caller_of
from web.deps import DbSession
from web.tenancy.foreign import units_here
from web.tenancy.guards import tenant_admin
from web.tenancy.scope import TenantData, tenant_access


@dataclass(frozen=True)
class UnitRef:
    id: int
    name: str


@dataclass(frozen=True)
class PersonOut:
    account_id: int
    email: str
    display_name: str
    #: tenant_admin or tenant_member.
    role: str
    #: False once deactivated: they can no longer enter the tenant.
    active: bool
    units: list[UnitRef]
    joined_at: datetime | None

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        units = [UnitRef(unit.id, unit.name) for unit in person.units]
        return cls(
            person.account_id,
            person.email,
            person.display_name,
            person.role,
            person.active,
            units,
            person.joined_at,
        )


@dataclass
class InviteIn:
    email: str
    display_name: str = ""
    role: str = TENANT_MEMBER
    #: The units a member sees (with everything below them).
    unit_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class InvitedOut:
    person: PersonOut
    #: Generated for them and shown in this answer only. It is their password unless the email
    #: already had a Tenantry account (in any tenant): that account keeps its own password and this
    #: one does not apply. The answer does not say which.
    password: str


class TenantPeopleApiController(Controller):
    path = "/people"
    tags = ["tenant"]
    guards = [tenant_admin]

    @get("/", summary="The tenant's people (admins only)")
    async def people(
        self, request: Request[Any, Any, Any], db_session: DbSession, tenant_data: TenantData
    ) -> list[PersonOut]:
        people = await list_people(db_session, tenant_data, tenant_access(request).tenant)
        return [PersonOut.of(person) for person in people]

    @post(
        "/",
        summary="Invite someone (admins only); the answer holds their password, once",
        status_code=HTTP_201_CREATED,
        responses={409: error("They are one of the tenant's people already")},
    )
    async def invite(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        data: Annotated[InviteIn, Body(description="Who to invite, as what, in which units")],
    ) -> InvitedOut:
        await units_here(request, tenant_data, data.unit_ids)
        person, password = await invite(
            db_session,
            tenant_data,
            caller_of(request),
            tenant_access(request).tenant,
            email=data.email,
            display_name=data.display_name,
            role=data.role,
            unit_ids=data.unit_ids,
        )
        return InvitedOut(PersonOut.of(person), password)
