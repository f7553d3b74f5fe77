"""Carving a unit subtree out of a tenant's rows: which rows go to the new tenant, with which ids,
and what the source keeps. Pure: it works on rows in the backups' portable form (services.backups
.content), read from a store or from a portable archive, so the dry run and the split job carve
alike.

- **Units**: the chosen unit and every unit below it go; the chosen one is the new tenant's root.
- **Rows assigned to a unit** (a template's or module's table with a `unit_id`) go when their unit
  goes. A row assigned to no unit goes with the row it belongs to (a not-null reference to a row
  that goes: an event's registrations), and otherwise stays.
- **People follow their units**: a profile assigned to a unit that goes is copied (its assignments
  to those units go); someone left with no unit in the source, and not its admin, is deactivated
  there. Roles and settings are copied; the tenant's own log stays.
- **Ids** of the rows that go (and of those copied) are renumbered 1, 2, 3 … in their old order;
  references follow, and a tree's materialised path is made again from its new ids.
- **References across the cut**: a reference from a row that goes to one that stays (or the other
  way) is cleared where it may be empty, said as a resolved conflict; a not-null one refuses the
  split, naming the row, the reference and what to change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from services.backups.content import ID_PATH, data_columns, id_column
from services.layers.ownership import TENANT_COLUMN, UNIT_COLUMN

UNITS = "units"
PROFILES = "users"
ASSIGNMENTS = "unit_assignments"
#: Copied whole into the new tenant; the source keeps them.
COPIED = ("roles", "settings")
#: The tenant's own log: neither copied nor moved.
STAYING = ("audit_entries",)
ADMIN_ROLE = "tenant_admin"

Row = dict[str, Any]


@dataclass(frozen=True)
class Reference:
    column: str
    table: str
    nullable: bool


@dataclass(frozen=True)
class Shape:
    """What the carve needs of a table: its data columns, its id, its references."""

    name: str
    columns: list[str]
    id: str | None
    references: tuple[Reference, ...]
    by_unit: bool
    #: A tree's materialised path of ids ("/1/4/9/"), made again from the new ids.
    path: str | None
    #: The primary key's columns (the tenant column left out).
    keys: tuple[str, ...]

    @classmethod
    def of(cls, table: Table) -> Shape:
        references = tuple(
            Reference(fk.parent.name, fk.column.table.name, bool(fk.parent.nullable))
            for fk in sorted(table.foreign_keys, key=lambda fk: fk.parent.name)
        )
        self_parent = any(ref.table == table.name for ref in references)
        column = id_column(table)
        return cls(
            name=table.name,
            columns=data_columns(table),
            id=column.name if column is not None else None,
            references=references,
            by_unit=UNIT_COLUMN in table.c,
            path=ID_PATH if self_parent and ID_PATH in table.c else None,
            keys=tuple(column.name for column in table.primary_key.columns if column.name != TENANT_COLUMN),
        )


@dataclass(frozen=True)
class Cleared:
    """A reference across the cut, cleared: in the new tenant or in the source."""

    table: str
    row_id: Any
    column: str
    refers_to: str
    target_id: Any
    #: "new tenant" or "source"
    where: str

    def __str__(self) -> str:
        if self.where == "source":
            return (
                f"{self.table} #{self.row_id} stays but its {self.column} names {self.refers_to} "
                f"#{self.target_id}, which goes: cleared in the source"
            )
        return (
            f"{self.table} #{self.row_id} goes but its {self.column} names {self.refers_to} "
            f"#{self.target_id}, which stays: cleared in the new tenant"
        )


@dataclass(frozen=True)
class Follower:
    """Someone assigned to a unit that goes: a member of the new tenant, with those units."""

    account_id: int
    email: str
    role: str
    active: bool
    #: Left with no unit in the source and not its admin: deactivated there.
    leaves_source: bool


@dataclass
class Carve:
    #: The new tenant's rows per table (renumbered, references followed), parents first.
    new: dict[str, list[Row]] = field(default_factory=dict)
    #: The source's rows per table afterwards.
    rest: dict[str, list[Row]] = field(default_factory=dict)
    #: The source's rows per table before.
    originals: dict[str, list[Row]] = field(default_factory=dict)
    #: Rows that leave the source, per table, as the source has them (copied rows are not among them).
    leaving: dict[str, list[Row]] = field(default_factory=dict)
    #: Per table, old id → new id of every row that went or was copied.
    ids: dict[str, dict[Any, int]] = field(default_factory=dict)
    cleared: list[Cleared] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)

    @property
    def moving(self) -> dict[str, int]:
        """How many rows leave the source, per table."""
        return {name: len(rows) for name, rows in self.leaving.items()}

    @property
    def rows_moving(self) -> int:
        return sum(self.moving.values())

    def changed_in_source(self, shape: Shape) -> list[tuple[Row, Row]]:
        """The source's rows of the table that stay but change (a reference across the cut cleared,
        a tree's path made again, a profile deactivated): each row's key columns and what changes."""
        originals = {_key(shape, row): row for row in self.originals.get(shape.name, [])}
        found = []
        for row in self.rest.get(shape.name, []):
            before = originals[_key(shape, row)]
            if changes := {column: value for column, value in row.items() if before.get(column) != value}:
                found.append(({column: before[column] for column in shape.keys}, changes))
        return found


class NoSuchUnit(LookupError):
    pass


def _key(shape: Shape, row: Row) -> Any:
    return row[shape.id] if shape.id is not None else tuple(row[column] for column in shape.columns)


def carve(shapes: list[Shape], rows: Mapping[str, Iterable[Row]], unit_id: int) -> Carve:
    """Carve the subtree of unit `unit_id` out of `rows` (portable rows per table, tables in
    `shapes`' order: parents first). Raises NoSuchUnit when the tenant has no such unit."""
    read = {shape.name: [dict(row) for row in rows.get(shape.name, ())] for shape in shapes}
    by_name = {shape.name: shape for shape in shapes}
    units = {row["id"]: row for row in read.get(UNITS, [])}
    if unit_id not in units:
        raise NoSuchUnit(unit_id)
    subtree = _subtree(units, unit_id)
    result = Carve()

    followers = _followers(read, subtree)
    roles = {row["id"]: row["key"] for row in read.get("roles", [])}
    result.followers = [
        Follower(
            account_id=int(profile["account_id"]),
            email=str(profile["email"]),
            role=roles.get(profile["role_id"], "tenant_member"),
            active=bool(profile["is_active"]),
            leaves_source=followers[profile["id"]] and roles.get(profile["role_id"]) != ADMIN_ROLE,
        )
        for profile in read.get(PROFILES, [])
        if profile["id"] in followers
    ]
    goes: dict[str, set[Any]] = {}
    copied: dict[str, set[Any]] = {}
    for shape in shapes:
        table_rows = read[shape.name]
        if shape.name == UNITS:
            goes[shape.name] = set(subtree)
        elif shape.name == PROFILES:
            copied[shape.name] = {row["id"] for row in table_rows if row["id"] in followers}
        elif shape.name in COPIED:
            copied[shape.name] = {_key(shape, row) for row in table_rows}
        elif shape.name in STAYING:
            goes[shape.name] = set()
        else:
            goes[shape.name] = {
                _key(shape, row) for row in table_rows if _goes(shape, row, subtree, goes, by_name)
            }

    for shape in shapes:  # new ids, in the old order
        taken = sorted(goes.get(shape.name, set()) | copied.get(shape.name, set()))
        if shape.id is not None:
            result.ids[shape.name] = {old: new for new, old in enumerate(taken, start=1)}

    for shape in shapes:
        leaving = goes.get(shape.name, set())
        kept_too = copied.get(shape.name, set())
        new_rows, rest_rows, left = [], [], []
        for row in read[shape.name]:
            key = _key(shape, row)
            if key in leaving or key in kept_too:
                new_rows.append(_renumbered(shape, row, unit_id, result))
            if key in leaving:
                left.append(row)
            else:
                rest_rows.append(_staying(shape, row, result, goes))
        if shape.path is not None:
            make_paths(shape, new_rows)
            make_paths(shape, rest_rows, only_below={_key(shape, row) for row in left})
        result.originals[shape.name] = read[shape.name]
        result.new[shape.name] = new_rows
        result.rest[shape.name] = rest_rows
        result.leaving[shape.name] = left
    return result


def _subtree(units: Mapping[Any, Row], root: int) -> set[int]:
    """The unit and every unit below it, by their parents (not their paths, which only mirror them)."""
    children: dict[Any, list[Any]] = defaultdict(list)
    for unit in units.values():
        children[unit["parent_id"]].append(unit["id"])
    found: set[int] = set()
    waiting = [root]
    while waiting:
        below = waiting.pop()
        if below not in found:
            found.add(below)
            waiting.extend(children[below])
    return found


def _followers(read: Mapping[str, list[Row]], subtree: set[int]) -> dict[Any, bool]:
    """Profile id → whether all their units go (they keep none in the source), for everyone
    assigned to a unit that goes."""
    units_of: dict[Any, set[int]] = defaultdict(set)
    for assignment in read.get(ASSIGNMENTS, []):
        units_of[assignment["user_id"]].add(assignment[UNIT_COLUMN])
    return {user: units <= subtree for user, units in units_of.items() if units & subtree}


def _goes(shape: Shape, row: Row, subtree: set[int], goes: dict[str, set[Any]], by: dict[str, Shape]) -> bool:
    unit = row.get(UNIT_COLUMN) if shape.by_unit else None
    if unit is not None:
        return unit in subtree
    # Assigned to no unit: it goes with a row it belongs to (a not-null reference to a row that goes).
    return any(
        not ref.nullable and ref.table != shape.name and row.get(ref.column) in goes.get(ref.table, ())
        for ref in shape.references
    )


def _renumbered(
    shape: Shape,
    row: Row,
    root: int,
    result: Carve,
) -> Row:
    new = dict(row)
    if shape.id is not None:
        new[shape.id] = result.ids[shape.name][row[shape.id]]
    for ref in shape.references:
        value = row.get(ref.column)
        if value is None:
            continue
        if shape.name == UNITS and ref.column == "parent_id" and row["id"] == root:
            new[ref.column] = None  # the new tenant's root
            continue
        ids = result.ids.get(ref.table, {})
        if value in ids:
            new[ref.column] = ids[value]
        else:
            _across_the_cut(shape, row, new, ref, result, where="new tenant")
    return new


def _staying(shape: Shape, row: Row, result: Carve, goes: dict[str, set[Any]]) -> Row:
    kept = dict(row)
    for ref in shape.references:
        value = row.get(ref.column)
        if value is None or value not in goes.get(ref.table, ()):
            continue
        _across_the_cut(shape, row, kept, ref, result, where="source")
    if shape.name == PROFILES and any(
        f.leaves_source and f.account_id == row["account_id"] for f in result.followers
    ):
        kept["is_active"] = False
    return kept


def _across_the_cut(
    shape: Shape, row: Row, written: Row, ref: Reference, result: Carve, *, where: str
) -> None:
    """A reference of `row` to a row on the other side of the cut (`where` it is written): cleared
    where it may be empty, a refusal otherwise."""
    value, row_id = row[ref.column], row.get(shape.id or "id")
    if ref.nullable:
        written[ref.column] = None
        result.cleared.append(Cleared(shape.name, row_id, ref.column, ref.table, value, where))
    elif where == "source":
        result.refusals.append(
            f"{shape.name} #{row_id} stays, but its {ref.column} names {ref.table} #{value}, which goes "
            "(and it cannot be empty): assign it to a unit inside the subtree, or that row to one outside it"
        )
    else:
        result.refusals.append(
            f"{shape.name} #{row_id} goes with the unit, but its {ref.column} names {ref.table} #{value}, "
            f"which stays (and it cannot be empty): assign that {ref.table} row to a unit inside the "
            "subtree, or this row to one outside it"
        )


def make_paths(
    shape: Shape,
    rows: list[Row],
    *,
    only_below: set[Any] | None = None,
    above: Mapping[Any, str] | None = None,
) -> None:
    """A tree's paths made again from its ids and parents: "/<root>/…/<id>/". With `only_below`,
    only the paths of rows that listed one of those ids (rows that stay below one that went); with
    `above`, the paths of parents outside `rows` (a merged tree's root hangs under another's)."""
    assert shape.path is not None and shape.id is not None
    parent_of = {row[shape.id]: row.get("parent_id") for row in rows}
    made: dict[Any, str] = dict(above or {})

    def path_of(row_id: Any) -> str:
        if row_id not in made:
            parent = parent_of.get(row_id)
            made[row_id] = (path_of(parent) if parent in parent_of or parent in made else "/") + f"{row_id}/"
        return made[row_id]

    for row in rows:
        listed = {int(part) for part in str(row[shape.path]).split("/") if part.isdigit()}
        if only_below is None or listed & only_below:
            row[shape.path] = path_of(row[shape.id])
