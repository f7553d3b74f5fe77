"""The tenant's people (/people, the tenant's admins only): who they are, their role, units and
whether they may enter; inviting someone (a password is shown once, on the page that answers the
invitation, the same whether the email already had an account or not), changing a role or units,
deactivating after a confirmation, and resetting the password of someone whose account is the
tenant's alone (shown once, after a confirmation).

People are named by their account id. An id that is someone of another tenant is "not found", as
for nobody, and recorded against that tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_201_CREATED, HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.resets import ResetRefused, account_of, reset_in_tenant, tenant_reset_refusal
from services.errors import DomainError, InvalidInput, NotFound
from services.models import Plan
from services.people.people import (
    Person,
    assign_units,
    count_active_people,
    deactivate,
    get_person,
    give_role,
    invite,
    list_people,
    reactivate,
    tenant_of_account_elsewhere,
)
from services.people.units import unit_tree
from services.tenancy.access import TENANT_MEMBER
from services.usage import Allowance
from web.audit import caller_of
from web.deps import DbSession
from web.tenancy.foreign import record_if_foreign, units_here
from web.tenancy.guards import tenant_admin
from web.tenancy.scope import TenantData, tenant_access, tenant_link
from web.tenant.pages import Form, tenant_page

#: One ticked checkbox arrives as a single value, several as a list, none as nothing.
UnitChoice = list[str] | str


@dataclass
class InviteForm:
    email: str = ""
    display_name: str = ""
    role: str = TENANT_MEMBER
    unit_ids: UnitChoice = field(default_factory=list)


@dataclass
class RoleForm:
    role: str = ""


@dataclass
class UnitsForm:
    unit_ids: UnitChoice = field(default_factory=list)


def _unit_ids(choice: UnitChoice) -> list[int]:
    values = [choice] if isinstance(choice, str) else choice
    try:
        return [int(value) for value in values if value.strip()]
    except ValueError:
        raise InvalidInput("Choose units from the list.", field="units") from None


async def _person_here(
    request: Request[Any, Any, Any], db_session: AsyncSession, tenant_data: TenantData, account_id: int
) -> Person:
    tenant = tenant_access(request).tenant
    try:
        return await get_person(db_session, tenant_data, tenant, account_id)
    except NotFound:

        async def owner(landlord: AsyncSession) -> int | None:
            elsewhere = await tenant_of_account_elsewhere(landlord, account_id, tenant)
            return elsewhere.id if elsewhere else None

        record_if_foreign(request, "person", {"account": account_id}, owner)
        raise


async def _people_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    tenant_data: TenantData,
    *,
    form: InviteForm | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    tenant = tenant_access(request).tenant
    plan = await db_session.get_one(Plan, tenant.plan_key)
    form = form or InviteForm()
    return tenant_page(
        request,
        "people.html",
        status_code,
        people=await list_people(db_session, tenant_data, tenant),
        allowance=Allowance(await count_active_people(db_session, tenant), plan.max_users),
        units=await unit_tree(tenant_data),
        form=form,
        ticked=set(_unit_ids(form.unit_ids)),
        errors=errors or {},
    )


async def _person_page(
    request: Request[Any, Any, Any],
    tenant_data: TenantData,
    person: Person,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    template: str = "person.html",
    **context: Any,
) -> Template:
    return tenant_page(
        request,
        template,
        status_code,
        person=person,
        units=await unit_tree(tenant_data),
        ticked={unit.id for unit in person.units},
        errors=errors or {},
        **context,
    )


DEACTIVATION = "person_deactivate.html"


async def _change_person(
    request: Request[Any, Any, Any],
    tenant_data: TenantData,
    person: Person,
    change: Awaitable[Person],
    *,
    refused_on: str = "person.html",
) -> Template | Redirect:
    """Make `change` to `person` (a use case of services.people.people, on the audit trail): a
    refusal is shown on `refused_on` with nothing changed. Then their page, or the tenant's home
    for an admin who has just made themselves a member."""
    try:
        changed = await change
    except DomainError as error:
        errors = error.errors_by_field("person")
        return await _person_page(
            request, tenant_data, person, errors=errors, status_code=422, template=refused_on
        )
    if changed.account_id == request.scope["user"].id and not changed.is_admin:
        return Redirect(tenant_link(request, "/"), status_code=HTTP_303_SEE_OTHER)
    return Redirect(tenant_link(request, f"/people/{changed.account_id}"), status_code=HTTP_303_SEE_OTHER)


class TenantPeopleController(Controller):
    path = "/people"
    include_in_schema = False
    guards = [tenant_admin]

    @get("/")
    async def people(
        self, request: Request[Any, Any, Any], db_session: DbSession, tenant_data: TenantData
    ) -> Template:
        return await _people_page(request, db_session, tenant_data)

    @post("/")
    async def invite(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        data: Annotated[InviteForm, Form],
    ) -> Template:
        unit_ids = _unit_ids(data.unit_ids)
        await units_here(request, tenant_data, unit_ids)
        try:
            person, password = await invite(
                db_session,
                tenant_data,
                caller_of(request),
                tenant_access(request).tenant,
                email=data.email,
                display_name=data.display_name,
                role=data.role,
                unit_ids=unit_ids,
            )
        except DomainError as error:
            errors = error.errors_by_field("email")
            return await _people_page(
                request, db_session, tenant_data, form=data, errors=errors, status_code=422
            )
        return tenant_page(request, "person_invited.html", HTTP_201_CREATED, person=person, password=password)

    @get("/{account_id:int}")
    async def person(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template:
        return await _person_page(
            request, tenant_data, await _person_here(request, db_session, tenant_data, account_id)
        )

    @post("/{account_id:int}/role")
    async def role(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
        data: Annotated[RoleForm, Form],
    ) -> Template | Redirect:
        person = await _person_here(request, db_session, tenant_data, account_id)
        tenant = tenant_access(request).tenant
        change = give_role(db_session, tenant_data, caller_of(request), tenant, account_id, data.role)
        return await _change_person(request, tenant_data, person, change)

    @post("/{account_id:int}/units")
    async def units(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
        data: Annotated[UnitsForm, Form],
    ) -> Template | Redirect:
        person = await _person_here(request, db_session, tenant_data, account_id)
        unit_ids = _unit_ids(data.unit_ids)
        await units_here(request, tenant_data, unit_ids)
        tenant = tenant_access(request).tenant
        change = assign_units(db_session, tenant_data, caller_of(request), tenant, account_id, unit_ids)
        return await _change_person(request, tenant_data, person, change)

    @get("/{account_id:int}/deactivate")
    async def confirm_deactivation(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template:
        person = await _person_here(request, db_session, tenant_data, account_id)
        return await _person_page(request, tenant_data, person, template=DEACTIVATION)

    @post("/{account_id:int}/deactivate")
    async def deactivate(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template | Redirect:
        person = await _person_here(request, db_session, tenant_data, account_id)
        tenant = tenant_access(request).tenant
        change = deactivate(db_session, tenant_data, caller_of(request), tenant, account_id)
        return await _change_person(request, tenant_data, person, change, refused_on=DEACTIVATION)

    @post("/{account_id:int}/reactivate")
    async def reactivate(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template | Redirect:
        person = await _person_here(request, db_session, tenant_data, account_id)
        tenant = tenant_access(request).tenant
        change = reactivate(db_session, tenant_data, caller_of(request), tenant, account_id)
        return await _change_person(request, tenant_data, person, change)

    @get("/{account_id:int}/password-reset")
    async def confirm_password_reset(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template:
        """What a reset does, on their page, before it is done; or why it may not be."""
        person = await _person_here(request, db_session, tenant_data, account_id)
        tenant = tenant_access(request).tenant
        refusal = tenant_reset_refusal(caller_of(request), tenant, await account_of(db_session, account_id))
        errors = {"password": refusal} if refusal else None
        return await _person_page(request, tenant_data, person, errors=errors, confirming_reset=True)

    @post("/{account_id:int}/password-reset")
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        account_id: FromPath[int],
    ) -> Template:
        """A new password for someone whose account is this tenant's alone, shown on this answer
        only (services.accounts.resets)."""
        person = await _person_here(request, db_session, tenant_data, account_id)
        tenant = tenant_access(request).tenant
        try:
            reset = await reset_in_tenant(db_session, caller_of(request), tenant, account_id)
        except ResetRefused as refused:
            errors = refused.errors_by_field("password")
            return await _person_page(request, tenant_data, person, errors=errors, status_code=409)
        return await _person_page(request, tenant_data, person, new_password=reset.password)
