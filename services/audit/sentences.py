"""The audit trail in sentences: each entry as a person would say it ("anna@reed.example disabled
the Events module of Reed Choir, keeping its data"), with the before and after of a change,
modules by their titles and times to the second. A detail key no sentence knows still shows, as
"key: value" after the sentence; an older entry missing a key still reads as a sentence."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.layers.catalogue import Catalogue
from services.models import AuditEntry

#: Who the platform itself acts as, by the email its entries carry.
_SYSTEM_ACTORS = {
    "schedule": "The schedule",
    "system:retention": "Backup retention",
    "system:deletion": "Tenant deletion",
    "system:move": "The move",
    "cli": "An operator at the command line",
}
_ROLES = {
    "superadmin": "superadmin",
    "landlord_admin": "landlord admin",
    "tenant_admin": "admin",
    "tenant_member": "member",
}


@dataclass(frozen=True)
class SwitchedWrite:
    """The entry a write made while switched into a tenant leaves beside the write's own entries
    (`switch.write`), with what a sentence says of it: the switcher's platform role and the name
    of the tenant they were switched into."""

    entry: AuditEntry
    role: str | None
    tenant_name: str | None


def sentence(
    entry: AuditEntry,
    *,
    tenant_name: str | None = None,
    catalogue: Catalogue | None = None,
    switched: SwitchedWrite | None = None,
) -> str:
    """`entry` as one sentence. `tenant_name` names its tenant (else its number), `catalogue` its
    modules; `switched` is the switched write it was made in (a `switch.write`'s is its own)."""
    telling = _Telling(entry, tenant_name, catalogue, switched)
    told = _PHRASES.get(entry.action, _unknown_action)(telling)
    rest = telling.rest()
    return f"{told} ({rest})" if rest else told


class _Telling:
    """One entry being told: what its sentence may name, and the detail it has not said yet."""

    def __init__(
        self,
        entry: AuditEntry,
        tenant_name: str | None,
        catalogue: Catalogue | None,
        switched: SwitchedWrite | None,
    ) -> None:
        self.entry = entry
        self.tenant = tenant_name or (f"tenant #{entry.tenant_id}" if entry.tenant_id else "")
        self._catalogue = catalogue
        self._switched = switched
        self._untold = dict(entry.detail or {})

    def take(self, key: str) -> Any:
        """The detail's `key` (None when it has none), as said by the sentence."""
        return self._untold.pop(key, None)

    def target(self, otherwise: str = "someone") -> str:
        return self.entry.target or otherwise

    @property
    def actor(self) -> str:
        """Who acted; staff switched into a tenant with their role and where they were."""
        email = self.entry.actor_email
        name = _SYSTEM_ACTORS.get(email) or email
        if email.startswith("cli:"):
            name = f"{email.removeprefix('cli:')} at the command line"
        if self._switched is None:
            return name
        role = _ROLES.get(self._switched.role or "", "staff")
        if self.entry.tenant_id is None:  # a landlord write, made while switched into a tenant
            return f"{name} ({role}, switched into {self._switched.tenant_name or 'a tenant'})"
        return f"{name} ({role}, switched in)"

    @property
    def in_tenant(self) -> str:
        """Where it was done: ' in Reed Choir', or ' for Reed Choir' by staff switched in."""
        if not self.tenant:
            return ""
        return f" {'for' if self._switched else 'in'} {self.tenant}"

    def modules(self, names: Iterable[Any]) -> str:
        """'the Events module', 'the Events and Finance modules': titled as the catalogue titles them."""
        titles = [self._title(name) for name in names]
        if not titles:
            return "a module"
        return f"the {_and(titles)} module{'s' if len(titles) > 1 else ''}"

    def _title(self, name: Any) -> str:
        layer = self._catalogue.modules.get(str(name)) if self._catalogue else None
        return layer.title if layer else str(name)

    def rest(self) -> str:
        """What the sentence left unsaid: the job first, the API token used last."""
        job, token = self.take("job"), self.take("token")
        said = [f"job #{job}"] if job is not None else []
        said += [f"{_humane(key)}: {_shown(value)}" for key, value in sorted(self._untold.items())]
        return "; ".join(said + ([f"API token {token}"] if token else []))


def _humane(key: str) -> str:
    return key.replace("_", " ")


def _and(items: Iterable[Any]) -> str:
    listed = [str(item) for item in items]
    return f"{', '.join(listed[:-1])} and {listed[-1]}" if len(listed) > 1 else "".join(listed)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _moment(value: str) -> str | None:
    """An ISO time as people read it, to the second in UTC; None for text that is not one."""
    if len(value) < 16 or value[10:11] != "T":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _when(value: Any) -> str:
    """A stored time as people read it."""
    return (_moment(value) or value) if isinstance(value, str) else str(value)


def _shown(value: Any) -> str:
    """A stored value as a sentence says it: text quoted, times to the second, lists joined."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _moment(value) or f"'{value}'"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{name} {_shown(item)}" for name, item in _flat(value).items()) or "none"
    return str(value)


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    """{"tenant": {"write": 60}} as {"tenant write": 60}: nested settings read as one list."""
    if not isinstance(values, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{_humane(str(key))}"
        flat.update(_flat(value, f"{name} ") if isinstance(value, dict) else {name: value})
    return flat


def _changes(t: _Telling) -> str:
    """The detail's `before` and `after`, as "name from 'Anna' to 'Anne'" for each that differs."""
    before, after = _flat(t.take("before")), _flat(t.take("after"))
    names = [*before, *(name for name in after if name not in before)]
    return ", ".join(
        f"{name} from {_shown(before.get(name))} to {_shown(after.get(name))}"
        for name in names
        if before.get(name) != after.get(name)
    )


def _numbered(noun: str, number: Any) -> str:
    """'backup #4', or 'a backup' when the entry does not say which."""
    return f"{noun} #{number}" if number is not None else f"a {noun}"


def _saying(reason: Any) -> str:
    return f", saying: “{reason}”" if reason else ""


def _since(started: Any) -> str:
    return f", switched in since {_when(started)}" if started else ""


# --- The sentences, by action ------------------------------------------------------------------


def _unknown_action(t: _Telling) -> str:
    return f"{t.actor} did {t.entry.action}{t.in_tenant}"


def _sign_in_failed(t: _Telling) -> str:
    if t.take("throttled"):
        return f"A sign-in as {t.actor} was refused: too many failed attempts"
    return f"A sign-in as {t.actor} failed"


def _account(t: _Telling) -> str:
    return f"the account {t.entry.target}" if t.entry.target else "an account"


def _password_change(t: _Telling) -> str:
    if t.entry.target in (None, t.entry.actor_email):
        return f"{t.actor} changed their own password"
    return f"{t.actor} changed the password of {t.target()}"


def _token(done: str, whose: str) -> Callable[[_Telling], str]:
    def told(t: _Telling) -> str:
        number, prefix, name = t.take("token"), t.take("prefix"), t.take("name")
        token = f"the API token #{number}" if number is not None else "an API token"
        token += (f" '{name}'" if name else "") + (f" ({prefix}…)" if prefix else "")
        scope = t.tenant or "the landlord"
        return f"{t.actor} {done} {token} {whose} {t.target()}, scoped to {scope}"

    return told


def _tenant_request(t: _Telling) -> str:
    first_admin = t.take("first_admin")
    with_admin = f", with {first_admin} as its first admin" if first_admin else ""
    return f"{t.actor} asked for the tenant {t.tenant}{with_admin}"


def _backup(t: _Telling) -> str:
    backup, backup_format, slot = t.take("backup"), t.take("format"), t.take("slot")
    told = f"{t.actor} backed up {t.tenant}" + (f" as backup #{backup}" if backup is not None else "")
    told += f", in the {backup_format} format" if backup_format else ""
    return told + (f", for the slot of {_when(slot)}" if slot else "")


def _backup_download(t: _Telling) -> str:
    backup, sha256 = t.take("backup"), t.take("sha256")
    checksum = f" (SHA-256 {sha256[:12]}…)" if isinstance(sha256, str) else ""
    return f"{t.actor} downloaded {_numbered('backup', backup)} of {t.tenant}{checksum}"


def _restore(t: _Telling) -> str:
    backup, backup_format = t.take("backup"), t.take("format")
    told = f"{t.actor} restored {t.tenant} from {_numbered('backup', backup)}"
    return told + (f", in the {backup_format} format" if backup_format else "")


def _restore_copy(t: _Telling) -> str:
    source, backup, isolation = t.take("from"), t.take("backup"), t.take("isolation")
    told = f"{t.actor} made the tenant {t.tenant} from {_numbered('backup', backup)}"
    told += f" of {source}" if source else ""
    return told + (f", in {isolation} isolation" if isolation else "")


def _prune(t: _Telling) -> str:
    backups, keep = t.take("backups") or [], t.take("keep")
    told = f"{t.actor} pruned backup{'' if len(backups) == 1 else 's'}"
    told += f" {_and(f'#{number}' for number in backups)} of {t.tenant}" if backups else f" of {t.tenant}"
    return told + (f", keeping the newest {keep} scheduled" if keep is not None else "")


def _backup_schedule(t: _Telling) -> str:
    daily_at, backup_format, keep = t.take("daily_at"), t.take("format"), t.take("keep")
    told = f"{t.actor} scheduled daily backups of {t.tenant}"
    told += f" at {daily_at} UTC" if daily_at else ""
    told += f" in the {backup_format} format" if backup_format else ""
    return told + (f", keeping the newest {keep}" if keep is not None else "")


def _setting(t: _Telling) -> str:
    setting, before, after = t.take("setting"), t.take("from"), t.take("to")
    what = f"the {_humane(str(setting))}" if setting else "a setting"
    told = f"{t.actor} changed {what} of {t.tenant}"
    return told + (
        f" from {_shown(before)} to {_shown(after)}" if before is not None or after is not None else ""
    )


def _plan(t: _Telling) -> str:
    before, after = t.take("from"), t.take("to")
    told = f"{t.actor} moved {t.tenant}" + (f" from the {before} plan" if before else "")
    return told + (f" to the {after} plan" if after else " to another plan")


def _rate_limits(t: _Telling) -> str:
    changes = _changes(t)
    if t.take("from_plan"):
        told = f"{t.actor} put {t.tenant} back on its plan's rate limits"
    else:
        told = f"{t.actor} gave {t.tenant} rate limits of its own"
    return f"{told} (requests a minute): {changes}" if changes else told


def _suspend(t: _Telling) -> str:
    return f"{t.actor} suspended {t.tenant}{_saying(t.take('reason'))}"


def _drop(t: _Telling) -> str:
    backup = t.take("backup")
    told = f"{t.actor} dropped the store of {t.tenant}, its grace period over"
    return told + (f"; its backup #{backup} is kept" if backup is not None else "")


def _move(t: _Telling) -> str:
    move, back_of, to = t.take("move"), t.take("back_of"), t.take("to")
    t.take("from")
    where = f" to {to}" if to else ""
    if back_of is not None:
        return f"{t.actor} asked for {t.tenant} to be moved back{where}, taking {_numbered('move', back_of)} back"
    return f"{t.actor} asked for {t.tenant} to be moved{where or ' to another store'}" + (
        f" ({_numbered('move', move)})" if move is not None else ""
    )


def _moved(t: _Telling) -> str:
    move, source, to = t.take("move"), t.take("from"), t.take("to")
    rows, tables, copy, freeze = t.take("rows"), t.take("tables"), t.take("copy_ms"), t.take("freeze_ms")
    told = (
        f"{t.actor} took {t.tenant}"
        + (f" from {source}" if source else "")
        + (f" to {to}" if to else " to another store")
    )
    told += f" ({_numbered('move', move)})" if move is not None else ""
    if rows is not None and tables is not None:
        told += f": {_plural(int(rows), 'row')} in {_plural(int(tables), 'table')}"
        told += f", copied in {int(copy) / 1000:.1f} s" if copy is not None else ""
    return told + (f"; its writes waited {int(freeze) / 1000:.1f} s" if freeze is not None else "")


def _split(t: _Telling) -> str:
    unit, into = t.take("unit"), t.take("into")
    t.take("job")
    return (
        f"{t.actor} asked for {unit or 'a unit'} of {t.tenant} to be split off into {into or 'a new tenant'}"
    )


def _split_off(t: _Telling) -> str:
    unit, into, rows, tables = t.take("unit"), t.take("into"), t.take("rows"), t.take("tables")
    people, cleared = t.take("people"), t.take("cleared")
    t.take("backup")
    t.take("job")
    told = f"{t.actor} split {unit or 'a unit'} off {t.tenant} into {into or 'a new tenant'}"
    if rows is not None and tables is not None:
        told += f": {_plural(int(rows), 'row')} of {_plural(int(tables), 'table')} moved"
    told += f", {int(people)} {'person' if people == 1 else 'people'} following their units" if people else ""
    return told + (f", {_plural(int(cleared), 'reference')} across the cut cleared" if cleared else "")


def _merge(t: _Telling) -> str:
    source = t.take("from")
    t.take("job")
    return f"{t.actor} asked for {source or 'a tenant'} to be merged into {t.tenant}"


def _merged(t: _Telling) -> str:
    source, rows, renamed = t.take("from"), t.take("rows"), t.take("renamed")
    t.take("job")
    told = f"{t.actor} merged {source or 'a tenant'} into {t.tenant}"
    told += f": {_plural(int(rows), 'row')} came in" if rows is not None else ""
    return told + (f", {_plural(int(renamed), 'value')} renamed where they clashed" if renamed else "")


def _fleet_start(what: str, aiming: str, taking: str) -> Callable[[_Telling], str]:
    """A fleet operation started: '… started rollout #3: every layer to its head, on 4 tenants
    (plans standard)'; a move plan's aim and tenants said its own way ('to shared', 'moving')."""

    def tell(t: _Telling) -> str:
        aim, selection, tenants = t.take("target"), t.take("selection"), t.take("tenants")
        told = f"{t.actor} started {t.target(what)}" + (f": {aiming}{aim}" if aim else "")
        told += f", {taking} {_plural(tenants, 'tenant')}" if isinstance(tenants, int) else ""
        return told + (f" ({selection})" if selection else "")

    return tell


def _fleet(what: str, done: str) -> Callable[[_Telling], str]:
    return lambda t: f"{t.actor} {done} {t.target(what)}"


def _rollback(t: _Telling) -> str:
    rollback = t.take("rollback")
    told = f"{t.actor} rolled back {t.target('a rollout')}"
    return told + (f" with rollout #{rollback}" if rollback is not None else "")


def _drift_check(t: _Telling) -> str:
    checked, drifted, unchecked = t.take("tenants"), t.take("drifted") or [], t.take("unchecked") or []
    told = f"{t.actor} had a drift check run"
    if isinstance(checked, int):
        told += f": {_plural(checked, 'tenant')} checked"
        told += (
            f", tenants {_and(f'#{number}' for number in drifted)} drifted" if drifted else ", none drifted"
        )
    return told + (f"; {_and(unchecked)} could not be checked" if unchecked else "")


def _module_enable(t: _Telling) -> str:
    modules, required = t.take("modules") or [], t.take("required") or []
    asked = [name for name in modules if name not in required] or modules
    brought = [name for name in modules if name not in asked]
    told = f"{t.actor} enabled {t.modules(asked)} of {t.tenant}"
    if not brought:
        return told
    needing = "which they need" if len(asked) > 1 else "which it needs"
    return f"{told}, with {t.modules(brought)}, {needing}"


def _module_disable(t: _Telling) -> str:
    module, keep_data = t.take("module"), t.take("keep_data")
    told = f"{t.actor} disabled {t.modules(filter(None, [module]))} of {t.tenant}"
    if keep_data is None:
        return told
    return told + (", keeping its data" if keep_data else ", dropping its data")


def _unit(unit: Any) -> str:
    return f"the unit {unit}" if unit else "a unit"


def _unit_change(done: str) -> Callable[[_Telling], str]:
    return lambda t: f"{t.actor} {done} {_unit(t.take('unit'))}{t.in_tenant}"


def _unit_rename(t: _Telling) -> str:
    was, unit = t.take("was"), t.take("unit")
    renamed = f"{_unit(was)} to {unit}" if unit else _unit(was)
    return f"{t.actor} renamed {renamed}{t.in_tenant}"


def _unit_move(t: _Telling) -> str:
    unit, parent = t.take("unit"), t.take("parent")
    under = f" under {parent}" if parent else ""
    return f"{t.actor} moved {_unit(unit)}{under}{t.in_tenant}"


def _role(value: Any) -> str:
    return _ROLES.get(str(value), str(value))


def _units(t: _Telling) -> str:
    """', in the units North and South' (the units someone was given), when the entry says."""
    units = t.take("units")
    if units is None:
        return ""
    return f", in the unit{'s' if len(units) > 1 else ''} {_and(units)}" if units else ", in no unit"


def _person_invite(t: _Telling) -> str:
    role = _role(t.take("role") or "")
    as_role = f" as {'an' if role[0] in 'aeiou' else 'a'} {role}" if role else ""
    return f"{t.actor} invited {t.target()}{as_role}{t.in_tenant}{_units(t)}"


def _person_change(done: str) -> Callable[[_Telling], str]:
    """A change to someone, with the role it gave (from the one they had) and units, if it did."""

    def told(t: _Telling) -> str:
        role, was = t.take("role"), t.take("was")
        changed = f" from {_role(was)}" if was else ""
        changed += f" to {_role(role)}" if role else ""
        return f"{t.actor} {done} {t.target()}{t.in_tenant}{',' if changed else ''}{changed}{_units(t)}"

    return told


def _person_units(t: _Telling) -> str:
    units = t.take("units") or []
    where = f"the unit{'s' if len(units) > 1 else ''} {_and(units)}" if units else "no unit"
    return f"{t.actor} assigned {t.target()} to {where}{t.in_tenant}"


def _row(t: _Telling) -> str:
    """A row of a tenant's table, as "row #26 of Party members" (the table titled as its pages are)."""
    table, number = t.take("table"), t.take("id")
    row = f"row #{number}" if number is not None else "a row"
    return f"{row} of {_humane(str(table)).capitalize()}" if table else row


def _record_update(t: _Telling) -> str:
    told = f"{t.actor} changed {_row(t)}{t.in_tenant}"
    changes = _changes(t)
    return f"{told}: {changes}" if changes else told


def _cross_tenant(t: _Telling) -> str:
    what, method, path, source = t.take("what"), t.take("method"), t.take("path"), t.take("from_tenant")
    told = f"{t.actor} {what or 'reached into another tenant'} ({t.tenant})"
    told += f" from the portal of {source}" if source else ""
    told += " and was refused"
    return f"{told}: {' '.join(filter(None, [method, path]))}" if path else told


def _switch_start(t: _Telling) -> str:
    until, reason = t.take("expires_at"), t.take("reason")
    told = f"{t.actor} switched into {t.tenant}" + (f" until {_when(until)}" if until else "")
    return told + _saying(reason)


def _switch_write(t: _Telling) -> str:
    method, path = t.take("method"), t.take("path")
    told = f"{t.actor} made a change for {t.tenant}"
    return f"{told}: {' '.join(filter(None, [method, path]))}" if path else told


#: How a switch ended, by its `cause` (services.tenancy.switching.SwitchEnd).
_ENDINGS = {
    "exit": "{actor} left {tenant}",
    "session_ended": "{actor}'s switch into {tenant} ended: they signed out, or someone else signed in",
    "revoked": "{actor}'s switch into {tenant} ended: they may no longer switch into tenants",
}


def _switch_end(t: _Telling) -> str:
    cause, started = t.take("cause"), t.take("started_at")
    t.take("expires_at")  # when it would have run out: its start said so
    ending = _ENDINGS.get(str(cause), "{actor}'s switch into {tenant} ended")
    return ending.format(actor=t.actor, tenant=t.tenant) + _since(started)


def _switch_expire(t: _Telling) -> str:
    until, started = t.take("expires_at"), t.take("started_at")
    t.take("cause")  # "expired", which the sentence says
    told = f"{t.actor}'s switch into {t.tenant} ran out" + (f" at {_when(until)}" if until else "")
    return told + _since(started)


_PHRASES: Mapping[str, Callable[[_Telling], str]] = {
    "sign_in": lambda t: f"{t.actor} signed in",
    "sign_in_failed": _sign_in_failed,
    "sign_out": lambda t: f"{t.actor} signed out",
    "user.create": lambda t: f"{t.actor} created {_account(t)}",
    "account.password_change": _password_change,
    "account.sign_out_elsewhere": lambda t: f"{t.actor} signed out of every other session of theirs",
    "account.password_reset": lambda t: f"{t.actor} reset the password of {t.target()}{t.in_tenant}",
    "token.create": _token("created", "for"),
    "token.revoke": _token("revoked", "of"),
    "tenant.request": _tenant_request,
    "tenant.retry": lambda t: f"{t.actor} retried provisioning {t.tenant}",
    "tenant.custom_apply": lambda t: f"{t.actor} applied the custom layer of {t.tenant}",
    "tenant.custom_rollback": lambda t: f"{t.actor} rolled back the last custom revision of {t.tenant}",
    "tenant.backup": _backup,
    "tenant.backup_verify": lambda t: (
        f"{t.actor} had {_numbered('backup', t.take('backup'))} of {t.tenant} verified again"
    ),
    "tenant.backup_download": _backup_download,
    "tenant.backup_schedule": _backup_schedule,
    "tenant.backup_schedule_clear": lambda t: f"{t.actor} stopped the scheduled backups of {t.tenant}",
    "tenant.restore": _restore,
    "tenant.restore_copy": _restore_copy,
    "backup.prune": _prune,
    "tenant.setting": _setting,
    "tenant.plan": _plan,
    "tenant.rate_limits": _rate_limits,
    "tenant.suspend": _suspend,
    "tenant.resume": lambda t: f"{t.actor} opened {t.tenant} to its people again",
    "tenant.delete": lambda t: f"{t.actor} asked for {t.tenant} to be deleted",
    "tenant.undelete": lambda t: f"{t.actor} undid the deletion of {t.tenant}",
    "tenant.drop": _drop,
    "tenant.move": _move,
    "tenant.moved": _moved,
    "tenant.split": _split,
    "tenant.split_off": _split_off,
    "tenant.merge": _merge,
    "tenant.merged": _merged,
    "moveplan.start": _fleet_start("a move plan", "to ", "moving"),
    "moveplan.pause": _fleet("a move plan", "paused"),
    "moveplan.resume": _fleet("a move plan", "resumed"),
    "moveplan.cancel": _fleet("a move plan", "cancelled"),
    "rollout.start": _fleet_start("a rollout", "", "on"),
    "rollout.pause": _fleet("a rollout", "paused"),
    "rollout.resume": _fleet("a rollout", "resumed"),
    "rollout.cancel": _fleet("a rollout", "cancelled"),
    "rollout.rollback": _rollback,
    "drift.check": _drift_check,
    "module.enable": _module_enable,
    "module.disable": _module_disable,
    "unit.create": _unit_change("added"),
    "unit.rename": _unit_rename,
    "unit.move": _unit_move,
    "unit.delete": _unit_change("deleted"),
    "person.invite": _person_invite,
    "person.first_admin": lambda t: f"{t.actor} made {t.target()} the first admin of {t.tenant}",
    "person.role": _person_change("changed the role of"),
    "person.units": _person_units,
    "person.deactivate": _person_change("deactivated"),
    "person.reactivate": _person_change("reactivated"),
    "record.create": lambda t: f"{t.actor} added {_row(t)}{t.in_tenant}",
    "record.update": _record_update,
    "record.delete": lambda t: f"{t.actor} deleted {_row(t)}{t.in_tenant}",
    "security.cross_tenant": _cross_tenant,
    "switch.start": _switch_start,
    "switch.write": _switch_write,
    "switch.end": _switch_end,
    "switch.expire": _switch_expire,
    "user.switch_grant": lambda t: f"{t.actor} allowed {t.target()} to switch into tenants",
    "user.switch_revoke": lambda t: f"{t.actor} no longer lets {t.target()} switch into tenants",
}
