"""The form of a record table, generated from its definition.

Every column a person may set becomes a field whose input follows the column's type: text, an
email address (a column named so), a textarea, a whole number, a decimal, a checkbox, a date, a
date and time, a choice (the values a `CHECK (… IN (…))` or an enum allows) or a reference (a
foreign key: one of the rows it may point to, as the request's scope sees them, so a member is
offered only their units' rows; units as their tree). The primary key, the tenant tag and what
the database computes (a `created_at` timestamp) are never set here.

A submission (a form's strings, or an API's JSON values) is read field by field into Python
values, and every mistake is reported at once, each next to its field, before anything is
written. What only the database can tell (a unique clash) is caught where the row is written
(services.tenant_data.records). Times are entered and shown on the clock of a zone the caller gives (the portal: the tenant's; the API: UTC).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import InvalidFields, InvalidInput
from services.layers.ownership import UNIT_COLUMN
from services.limits import integer_range, text_problem
from services.models.tenant import TenantBase, TenantUser, Unit, UnitAssignment
from services.tenancy.sessions import scope_of
from services.tenant_data.records import RecordSchema, RecordTable, column_label, in_zone

#: A reference select lists at most this many rows; a table with more takes a row's id instead.
OPTION_LIMIT = 500
_LABEL_LENGTH = 60


class FieldKind(StrEnum):
    TEXT = "text"
    EMAIL = "email"
    TEXTAREA = "textarea"
    NUMBER = "number"
    DECIMAL = "decimal"
    CHECKBOX = "checkbox"
    DATE = "date"
    DATETIME = "datetime-local"
    CHOICE = "choice"
    REFERENCE = "reference"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    #: How deep in a tree the choice is (a unit inside a unit inside the top one is 2).
    depth: int = 0


@dataclass(frozen=True)
class Comparison:
    """A CHECK comparing the field with a number (`amount > 0`) or another column
    (`ends_at >= starts_at`), read from the table so a form can say what is wrong before the
    database refuses it."""

    operator: str
    number: Decimal | None = None
    column: str | None = None


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: FieldKind
    nullable: bool
    #: The database's default as the input shows it ("draft", "0", "on"); None when it has none.
    default: str | None = None
    max_length: int | None = None
    #: Whole numbers and references by id: the smallest and largest value the column type holds.
    limits: tuple[int, int] | None = None
    #: Decimals: digits in all, and after the point.
    precision: int | None = None
    scale: int | None = None
    choices: tuple[Choice, ...] = ()
    #: A reference: the table and column it points to. Its choices are filled per request.
    target: str | None = None
    target_column: str | None = None
    comparisons: tuple[Comparison, ...] = ()
    #: Set per form: whether it must be filled in (see `_required`).
    required: bool = False
    #: A reference to a table with too many rows to list: the input takes a row's id.
    by_id: bool = False

    @property
    def input_type(self) -> str:
        """The HTML input that edits it (textarea, select and checkbox are their own elements)."""
        if self.kind in (FieldKind.NUMBER, FieldKind.DECIMAL) or self.by_id:
            return "number"
        if self.kind in (FieldKind.EMAIL, FieldKind.DATE, FieldKind.DATETIME):
            return self.kind.value
        return "text"

    @property
    def step(self) -> str | None:
        if self.kind is FieldKind.DECIMAL:
            return f"{Decimal(1).scaleb(-self.scale):f}" if self.scale else "any"
        return "1" if self.input_type == "number" else None

    @property
    def minimum(self) -> str | None:
        bounds = [c.number for c in self.comparisons if c.operator == ">=" and c.number is not None]
        return f"{max(bounds)}" if bounds else None

    @property
    def hint(self) -> str | None:
        if self.by_id:
            return f"The number of a row of {self.target}: there are too many to list."
        if self.kind is FieldKind.DECIMAL and self.scale:
            return f"Up to {self.scale} decimal place{'s' if self.scale > 1 else ''}."
        return None


@dataclass(frozen=True)
class RecordForm:
    """A form as a page shows it: its fields, what their inputs hold, and what is wrong."""

    table: RecordTable
    fields: tuple[Field, ...]
    values: Mapping[str, str]
    creating: bool
    errors: Mapping[str, str] = field(default_factory=dict)
    #: A refusal that is no single field's (say, the database refused the row as a whole).
    problem: str | None = None
    #: The tables the references point to that have pages here (a new row may be added there), by
    #: field.
    targets: Mapping[str, RecordTable] = field(default_factory=dict)


class InvalidRecord(InvalidFields):
    """A submission with mistakes. `hidden_references` names the references to rows the scope
    cannot see, by field: (table, id), so the caller may check whose they are."""

    def __init__(self, errors: dict[str, str], hidden_references: dict[str, tuple[str, int]]) -> None:
        super().__init__(errors)
        self.hidden_references = hidden_references


# --- Fields from a table's definition ------------------------------------------------------------


@cache
def table_fields(table: RecordTable) -> tuple[Field, ...]:
    """The fields of `table` a person may set, in column order."""
    choices, comparisons = _check_rules(table.table)
    return tuple(
        _field(column, choices.get(column.name), tuple(comparisons.get(column.name, ())))
        for column in table.columns
        if not column.primary_key and not _computed_default(column)
    )


def _field(
    column: Column[Any], allowed: tuple[str, ...] | None, comparisons: tuple[Comparison, ...]
) -> Field:
    kind, facts = _kind_of(column, allowed)
    return Field(
        name=column.key,
        label=column_label(column),
        kind=kind,
        nullable=bool(column.nullable),
        default=_input_default(column, kind),
        comparisons=comparisons,
        **facts,
    )


def _kind_of(column: Column[Any], allowed: tuple[str, ...] | None) -> tuple[FieldKind, dict[str, Any]]:
    """The kind of input a column gets, and what else its type says about the values it takes."""
    kind = column.type
    if column.foreign_keys:
        target = next(iter(column.foreign_keys)).column
        facts: dict[str, Any] = {"target": target.table.name, "target_column": target.name}
        if isinstance(kind, Integer):  # an id beyond it names no row
            facts["limits"] = integer_range(kind)
        return FieldKind.REFERENCE, facts
    if isinstance(kind, Enum) and kind.enums:
        allowed = tuple(kind.enums)
    if allowed:
        return FieldKind.CHOICE, {"choices": tuple(Choice(value, _readable(value)) for value in allowed)}
    if isinstance(kind, Boolean):
        return FieldKind.CHECKBOX, {}
    if isinstance(kind, Integer):
        return FieldKind.NUMBER, {"limits": integer_range(kind)}
    if isinstance(kind, Float):  # its precision counts binary digits: no decimal limits to check
        return FieldKind.DECIMAL, {}
    if isinstance(kind, Numeric):
        return FieldKind.DECIMAL, {"precision": kind.precision, "scale": kind.scale}
    if isinstance(kind, DateTime):
        return FieldKind.DATETIME, {}
    if isinstance(kind, Date):
        return FieldKind.DATE, {}
    if isinstance(kind, Text) and not kind.length:
        return FieldKind.TEXTAREA, {}
    text = FieldKind.EMAIL if _holds_emails(column) else FieldKind.TEXT
    return text, {"max_length": kind.length if isinstance(kind, String) else None}


def _holds_emails(column: Column[Any]) -> bool:
    """A text column named for email addresses: email, contact_email, email_address."""
    return "email" in column.name.split("_")


def _readable(value: str) -> str:
    return value.replace("_", " ").capitalize()


#: A literal server default, as SQLite ('draft', 0) and PostgreSQL ('draft'::character varying,
#: '0'::numeric, false) report it.
_LITERAL = re.compile(
    r"\(*(?:'(?P<text>(?:[^']|'')*)'|(?P<number>[+-]?\d+(?:\.\d+)?)|(?P<truth>true|false))\)*(?:::[\w ]+)?",
    re.IGNORECASE,
)


def _server_default(column: Column[Any]) -> str | None:
    default = column.server_default
    if default is None:
        return None
    argument = getattr(default, "arg", None)
    return str(getattr(argument, "text", argument))


def _computed_default(column: Column[Any]) -> bool:
    """The database computes the value (CURRENT_TIMESTAMP, a sequence): not a person's to set."""
    default = _server_default(column)
    return default is not None and _LITERAL.fullmatch(default.strip()) is None


def _input_default(column: Column[Any], kind: FieldKind) -> str | None:
    default = _server_default(column)
    literal = _LITERAL.fullmatch(default.strip()) if default is not None else None
    if literal is None:
        return None
    value = literal["number"] or literal["truth"] or (literal["text"] or "").replace("''", "'")
    if kind is FieldKind.CHECKBOX:
        return "on" if value.lower() in ("1", "true", "t") else ""
    return value


# --- CHECK constraints: choices and comparisons --------------------------------------------------

_QUOTED = re.compile(r"'((?:[^']|'')*)'")
#: `status IN ('a', 'b')` (SQLite, and as written) or `status::text = ANY (ARRAY['a'::…]::text[])`.
_CHOICES = re.compile(
    r"\(*\s*(?P<column>\w+)\)?(?:::[\w ]+)?\s+"
    r"(?:IN\s*\((?P<listed>.*)\)|=\s*ANY\s*\(\s*\(?\s*ARRAY\s*\[(?P<array>.*)\].*\))\s*\)*",
    re.IGNORECASE | re.DOTALL,
)
_NULL_OR = re.compile(
    r"\(*\s*(?P<column>\w+)\s+IS\s+NULL\s*\)*\s+OR\s+(?P<rest>.*)", re.IGNORECASE | re.DOTALL
)
_COMPARISON = re.compile(
    r"\(*\s*(?P<column>\w+)\s*(?P<operator>>=|<=|>|<)\s*"
    r"(?:\(*(?P<number>[+-]?\d+(?:\.\d+)?)\)*(?:::\w+)?|(?P<other>[A-Za-z_]\w*))\s*\)*"
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


@cache
def _check_rules(table: Table) -> tuple[dict[str, tuple[str, ...]], dict[str, list[Comparison]]]:
    """The choices and comparisons the table's CHECK constraints state, by column. A rule in any
    other shape is left to the database, whose refusal still names the field."""
    choices: dict[str, tuple[str, ...]] = {}
    comparisons: dict[str, list[Comparison]] = {}
    for constraint in table.constraints:
        if not isinstance(constraint, CheckConstraint):
            continue
        rule = str(constraint.sqltext).strip()
        if (listed := _CHOICES.fullmatch(rule)) and listed["column"] in table.c:
            values = listed["listed"] if listed["listed"] is not None else listed["array"]
            choices[listed["column"]] = tuple(v.replace("''", "'") for v in _QUOTED.findall(values))
            continue
        parts = [_comparison(part, table) for part in _AND.split(rule)]
        if all(part is not None for part in parts):
            for column, comparison in filter(None, parts):
                comparisons.setdefault(column, []).append(comparison)
    return choices, comparisons


def _comparison(rule: str, table: Table) -> tuple[str, Comparison] | None:
    if (unless_empty := _NULL_OR.fullmatch(rule.strip())) is not None:
        rule = unless_empty["rest"]
    found = _COMPARISON.fullmatch(rule.strip())
    if found is None or found["column"] not in table.c:
        return None
    if unless_empty is not None and unless_empty["column"] != found["column"]:
        return None
    if found["number"] is not None:
        return found["column"], Comparison(found["operator"], number=Decimal(found["number"]))
    if found["other"] not in table.c:
        return None
    return found["column"], Comparison(found["operator"], column=found["other"])


# --- Reading a submission ------------------------------------------------------------------------


def _required(field: Field, *, members_only: bool) -> bool:
    """Must be filled in: a column that cannot be empty (a new row's input starts with the
    column's default, if it has one), and a member's unit, since a member's rows live in their
    units. A checkbox always has a value."""
    if field.kind is FieldKind.CHECKBOX:
        return False
    return not field.nullable or (field.name == UNIT_COLUMN and members_only)


def _members_only(data: AsyncSession) -> bool:
    return scope_of(data.sync_session).unit_ids is not None


def _is_empty(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _missing(field: Field) -> str:
    if field.kind in (FieldKind.CHOICE, FieldKind.REFERENCE) and not field.by_id:
        return f"Choose a {field.label.lower()}."
    return f"Fill in {field.label.lower()}."


def _text(field: Field, raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("Enter text.")
    value = raw if field.kind is FieldKind.TEXTAREA else raw.strip()
    if (problem := text_problem(value, field.max_length)) is not None:
        raise InvalidInput(problem)
    return value


#: One address: a name, an @, and a domain of dot-separated names; no spaces, no second @.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def _email(field: Field, raw: object) -> str:
    value = _text(field, raw)
    if _EMAIL.fullmatch(value) is None:
        raise InvalidInput("Enter a valid email address, like name@example.org.")
    return value


def _whole_number(field: Field, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
        value = int(raw)
    else:
        raise InvalidInput("Enter a whole number, such as 42.")
    low, high = field.limits or (value, value)
    if not low <= value <= high:
        raise InvalidInput(f"Enter a number from {low} to {high}.")
    return value


def _decimal(field: Field, raw: object) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidInput("Enter a number, such as 12.50.")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidInput("Enter a number, such as 12.50.") from None
    if not value.is_finite():
        raise InvalidInput("Enter a number, such as 12.50.")
    exponent = int(value.as_tuple().exponent)
    if field.scale is not None and -exponent > field.scale:
        raise InvalidInput(f"At most {field.scale} decimal place{'s' if field.scale != 1 else ''}.")
    if field.precision is not None:
        whole_digits = len(str(abs(int(value)))) if abs(value) >= 1 else 0
        allowed = field.precision - (field.scale or 0)
        if whole_digits > allowed:
            raise InvalidInput(f"Too large: at most {allowed} digits before the decimal point.")
    return value


_TRUE, _FALSE = ("on", "true", "1", "yes"), ("", "off", "false", "0", "no")


def _checkbox(_field: Field, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise InvalidInput("Tick it or leave it empty (true or false).")


def _date(_field: Field, raw: object) -> date:
    try:
        if isinstance(raw, str) and len(raw.strip()) == 10:
            return date.fromisoformat(raw.strip())
    except ValueError:
        pass
    raise InvalidInput("Enter a date as YYYY-MM-DD, such as 2025-03-31.")


def _datetime(raw: object, zone: tzinfo) -> datetime:
    """A time as typed: on the clock of `zone` unless it names its own offset; kept in UTC."""
    try:
        if isinstance(raw, str):
            value = datetime.fromisoformat(raw.strip())
            return (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(UTC)
    except ValueError:
        pass
    raise InvalidInput(f"Enter a date and time as YYYY-MM-DD HH:MM ({zone}), such as 2025-03-31 18:30.")


def _choice(field: Field, raw: object) -> str:
    allowed = [choice.value for choice in field.choices]
    if raw not in allowed:
        raise InvalidInput(f"Choose one of: {', '.join(allowed)}.")
    return str(raw)


def _reference(field: Field, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
        value = int(raw)
    else:
        raise InvalidInput(f"Choose a {field.label.lower()} from the list.")
    low, high = field.limits or (value, value)
    if not low <= value <= high:  # no row has such an id: refused as one that does not exist
        raise InvalidInput(_not_offered(field, value))
    return value


def _not_offered(field: Field, value: object) -> str:
    return f"Choose a {field.label.lower()} from the list: #{value} is not one you can see."


_PARSERS: dict[FieldKind, Callable[[Field, object], Any]] = {
    FieldKind.TEXT: _text,
    FieldKind.EMAIL: _email,
    FieldKind.TEXTAREA: _text,
    FieldKind.NUMBER: _whole_number,
    FieldKind.DECIMAL: _decimal,
    FieldKind.CHECKBOX: _checkbox,
    FieldKind.DATE: _date,
    FieldKind.CHOICE: _choice,
    FieldKind.REFERENCE: _reference,
}


def _read_field(field: Field, raw: object, zone: tzinfo) -> Any:
    """One submitted value as the column takes it; raises InvalidInput saying what is wrong."""
    if field.kind is FieldKind.CHECKBOX and raw is None:
        return None if field.nullable else False
    if _is_empty(raw) and field.kind is not FieldKind.CHECKBOX:
        if field.required:
            raise InvalidInput(_missing(field))
        return None
    if field.kind is FieldKind.DATETIME:
        return _datetime(raw, zone)
    return _PARSERS[field.kind](field, raw)


async def read_record(
    data: AsyncSession,
    schema: RecordSchema,
    table: RecordTable,
    submitted: Mapping[str, object],
    *,
    row: Any | None = None,
    partial: bool = False,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """The column values a submission sets, checked (times without an offset on the clock of
    `zone`): for a new row (`row` None) or over `row`.
    A field not submitted is left empty; or takes the column's default, for a new row; or, when
    `partial`, stays as it is. Raises InvalidRecord
    naming every field that is wrong; a name that is no column of the table is one of them.
    Read-only columns (the id, created_at) are ignored, so a row read from the API may be sent
    back as it is."""
    creating = row is None
    fields = _fields_for(data, table)
    columns = {column.key for column in table.columns}
    errors = {name: f"{table.title} has no field {name!r}." for name in submitted if name not in columns}
    values: dict[str, Any] = {}
    for each in fields:
        if each.name not in submitted and (partial or (creating and each.default is not None)):
            continue  # as it is, or the database's default
        try:
            values[each.name] = _read_field(each, submitted.get(each.name), zone)
        except InvalidInput as error:
            errors[each.name] = error.message
    current = {each.name: getattr(row, each.name) for each in fields} if row is not None else {}
    hidden = await _hidden_references(data, schema, fields, values, current, errors)
    _compare(fields, {name: _comparable(value) for name, value in {**current, **values}.items()}, errors)
    if errors:
        raise InvalidRecord(errors, hidden)
    return values


def _fields_for(data: AsyncSession, table: RecordTable) -> tuple[Field, ...]:
    members_only = _members_only(data)
    return tuple(
        replace(each, required=_required(each, members_only=members_only)) for each in table_fields(table)
    )


async def _hidden_references(
    data: AsyncSession,
    schema: RecordSchema,
    fields: tuple[Field, ...],
    values: dict[str, Any],
    current: dict[str, Any],
    errors: dict[str, str],
) -> dict[str, tuple[str, int]]:
    """References to rows the scope cannot see (gone, in another unit, or another tenant's):
    refused alike, each next to its field. A reference the row already has is kept as it is: a
    member may edit their unit's event even when its venue is in another unit."""
    hidden: dict[str, tuple[str, int]] = {}
    for each in fields:
        value = values.get(each.name)
        if each.kind is not FieldKind.REFERENCE or value is None or each.name in errors:
            continue
        if each.name in current and current[each.name] == value:
            continue
        model = _model_of(schema, each.target)
        if model is None:
            continue  # not a tenant table this portal maps: the database's foreign key decides
        key = getattr(model, each.target_column or "id")
        offered = _offered(select(func.count()).select_from(model).where(key == value), model, data)
        if not await data.scalar(offered):
            errors[each.name] = _not_offered(each, value)
            hidden[each.name] = (str(each.target), value)
    return hidden


_TEMPORAL = {">=": "on or after", ">": "after", "<=": "on or before", "<": "before"}
_NUMERIC = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}
_HOLDS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def _comparable(value: Any) -> Any:
    """SQLite hands back times without their zone; they are UTC, like the ones read here."""
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _compare(fields: tuple[Field, ...], values: dict[str, Any], errors: dict[str, str]) -> None:
    """The table's comparisons, over the values the row would have. An empty side passes, as in SQL."""
    labels = {each.name: each.label for each in fields}
    for each in fields:
        value = values.get(each.name)
        if value is None or each.name in errors:
            continue
        for rule in each.comparisons:
            other = rule.number if rule.number is not None else values.get(rule.column or "")
            if other is None or (rule.column in errors) or _HOLDS[rule.operator](value, other):
                continue
            words = _TEMPORAL if isinstance(value, date) else _NUMERIC
            than = f"{other}" if rule.number is not None else f"“{labels.get(str(rule.column), rule.column)}”"
            errors[each.name] = f"Must be {words[rule.operator]} {than}."
            break


# --- What a form shows ---------------------------------------------------------------------------


def blank_values(table: RecordTable) -> dict[str, str]:
    """A new row's inputs: the database's defaults, or empty."""
    return {each.name: each.default or "" for each in table_fields(table)}


def values_of(table: RecordTable, row: Any, zone: tzinfo = UTC) -> dict[str, str]:
    """A row's values as its form's inputs hold them (times on the clock of `zone`)."""
    return {each.name: input_value(getattr(row, each.name), zone) for each in table_fields(table)}


def input_value(value: Any, zone: tzinfo = UTC) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, datetime):
        moment = in_zone(value, zone)
        return moment.isoformat(timespec="seconds" if moment.second else "minutes")
    if isinstance(value, date | Decimal):
        return f"{value:f}" if isinstance(value, Decimal) else value.isoformat()
    return str(value)


def from_form(table: RecordTable, form: Mapping[str, str]) -> dict[str, str]:
    """A posted HTML form's values for the table's fields. An unticked checkbox is not posted at
    all: here it is an empty string, which reads as false."""
    return {each.name: form.get(each.name, "") for each in table_fields(table)}


async def record_form(
    data: AsyncSession,
    schema: RecordSchema,
    table: RecordTable,
    values: Mapping[str, str],
    *,
    creating: bool,
    errors: Mapping[str, str] | None = None,
    problem: str | None = None,
) -> RecordForm:
    """The form as the scope sees it: each reference lists the rows the scope may point to (and,
    when editing, the row it points to already, even if the scope cannot see that one)."""
    fields = []
    targets = {}
    for each in _fields_for(data, table):
        if each.kind is FieldKind.REFERENCE:
            choices = await _choices(data, schema, each)
            held = values.get(each.name, "")
            if choices is not None and held and not creating and held not in {c.value for c in choices}:
                choices += (Choice(held, f"#{held} (not in your view)"),)
            each = replace(each, choices=choices or (), by_id=choices is None)
            if each.target in schema.tables:
                targets[each.name] = schema.tables[each.target]
        fields.append(each)
    return RecordForm(table, tuple(fields), values, creating, errors or {}, problem, targets)


async def _choices(data: AsyncSession, schema: RecordSchema, reference: Field) -> tuple[Choice, ...] | None:
    """The rows a reference may point to, by label; None when there are too many to list."""
    model = _model_of(schema, reference.target)
    if model is None:
        return None
    if model is Unit:
        return await _unit_choices(data)
    key = getattr(model, reference.target_column or "id")
    label = label_column(model.__table__)
    statement = select(key, label if label is not None else key).order_by(
        label if label is not None else key, key
    )
    rows = (await data.execute(_offered(statement, model, data).limit(OPTION_LIMIT + 1))).all()
    if len(rows) > OPTION_LIMIT:
        return None
    return tuple(Choice(str(value), _option(value, shown)) for value, shown in rows)


async def _unit_choices(data: AsyncSession) -> tuple[Choice, ...] | None:
    """The units the scope sees, as their tree: each after its parent and one deeper, units of one
    parent by name. A member's top units (their parents out of view) are at depth 0."""
    units = (await data.execute(select(Unit.id, Unit.parent_id, Unit.name).limit(OPTION_LIMIT + 1))).all()
    if len(units) > OPTION_LIMIT:
        return None
    in_view = {unit.id for unit in units}
    inside: dict[int | None, list[Any]] = {}
    for unit in sorted(units, key=lambda unit: (unit.name.casefold(), unit.id)):
        inside.setdefault(unit.parent_id if unit.parent_id in in_view else None, []).append(unit)
    choices = []
    waiting = [(unit, 0) for unit in reversed(inside.get(None, []))]
    while waiting:
        unit, depth = waiting.pop()
        choices.append(Choice(str(unit.id), _option(unit.id, unit.name), depth))
        waiting += [(child, depth + 1) for child in reversed(inside.get(unit.id, []))]
    return tuple(choices)


#: For each reference column, the label of each row it points to, by that row's key.
Labels = dict[str, dict[Any, str]]


async def reference_labels(
    data: AsyncSession, schema: RecordSchema, table: RecordTable, rows: list[Any]
) -> Labels:
    """For each reference of `table`, the labels of the rows `rows` point to (those the scope sees)."""
    labels: Labels = {}
    for each in table_fields(table):
        model = _model_of(schema, each.target) if each.kind is FieldKind.REFERENCE else None
        ids = {getattr(row, each.name) for row in rows} - {None}
        if model is None or not ids:
            continue
        key = getattr(model, each.target_column or "id")
        label = label_column(model.__table__)
        found = await data.execute(select(key, label if label is not None else key).where(key.in_(ids)))
        labels[each.name] = {value: _option(value, shown) for value, shown in found.all()}
    return labels


def _offered(statement: Select[Any], model: Any, data: AsyncSession) -> Select[Any]:
    """`statement` over the rows of `model` a reference may point to: what the scope sees, and of
    people, only those active and, for a member, assigned to a unit in their view (which
    includes the member). The people page is the admins'; a select must not list the tenant."""
    if model is not TenantUser:
        return statement
    statement = statement.where(TenantUser.is_active.is_(True))
    if _members_only(data):  # assignments are filtered to the member's units by the session
        statement = statement.where(TenantUser.id.in_(select(UnitAssignment.user_id)))
    return statement


def _option(value: Any, label: Any) -> str:
    shown = _shortened(label) if label is not None and label != value else ""
    return f"{shown} (#{value})" if shown else f"#{value}"


def _shortened(label: Any) -> str:
    shown = str(label).strip()
    return shown[: _LABEL_LENGTH - 1] + "…" if len(shown) > _LABEL_LENGTH else shown


def _model_of(schema: RecordSchema, table: str | None) -> Any | None:
    if table in schema.tables:
        return schema.tables[table].model
    return _basic_models().get(table or "")


@cache
def _basic_models() -> dict[str, Any]:
    return {mapper.class_.__tablename__: mapper.class_ for mapper in TenantBase.registry.mappers}


_NAMES = ("name", "title", "display_name")
_IDENTIFYING = ("handle", "code", "number", "reference", "filename", "email", "description")


@cache
def label_column(table: Table) -> Column[Any] | None:
    """The column that names a row to a person: a name or title, else something identifying,
    else any text; never a choice or a reference."""
    choices = _check_rules(table)[0]
    texts = [
        column
        for column in table.columns
        if isinstance(column.type, String) and not column.foreign_keys and column.name not in choices
    ]
    ranked = sorted(
        texts,
        key=lambda column: (
            column.name not in _NAMES and not column.name.endswith(("_name", "_title")),
            column.name not in _IDENTIFYING,
            bool(column.nullable),
            isinstance(column.type, Text),
        ),
    )
    return ranked[0] if ranked else None


def record_name(table: RecordTable, row: Any) -> str | None:
    """What names `row` to a person ("Anna de Vries"): its label column's value (see `row_name`)."""
    label = label_column(table.table)
    return row_name(getattr(row, label.key)) if label is not None else None


def row_name(label: Any) -> str | None:
    """A value of a label column as it names its row, shortened; None when it is empty."""
    return _shortened(label) or None if label is not None else None


def record_title(table: RecordTable, row: Any) -> str:
    """A row as a page names it (see `titled`)."""
    return titled(table, getattr(row, table.primary_key.key), record_name(table, row))


def titled(table: RecordTable, record_id: Any, name: str | None) -> str:
    """The row `record_id` of `table`, named `name`: "Party member: Anna de Vries", or
    "Attendance #3" when nothing names it."""
    return f"{table.singular}: {name}" if name else f"{table.singular} #{record_id}"
