"""Reading the fields of the portals' forms the same way on every page: whole numbers, and the
selection of a fleet's tenants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement

from services.limits import integer_range
from services.selection import Selection


def whole_number(
    text: str, column: ColumnElement[Any], *, name: str, optional: bool, errors: dict[str, str]
) -> int | None:
    """The whole number in the field `name`, stored in `column`: None when an optional one is
    empty, or when it is wrong (what is wrong is added to `errors`). No more than the column holds."""
    text = text.strip()
    if not text and optional:
        return None
    try:
        value = int(text)
    except ValueError:
        errors[name] = "Give a whole number" + (", or leave it empty." if optional else ".")
        return None
    _, most = integer_range(column.type)
    if value > most:
        errors[name] = f"At most {most}."
        return None
    return value


@dataclass
class SelectionForm:
    """The fields a fleet form (a rollout's, a move plan's) selects its tenants with."""

    #: One ticked checkbox arrives as a single value, several as a list.
    templates: list[str] | str = field(default_factory=list)
    modules: list[str] | str = field(default_factory=list)
    plans: list[str] | str = field(default_factory=list)
    isolation: list[str] | str = field(default_factory=list)
    servers: list[str] | str = field(default_factory=list)
    #: Slugs, separated by commas.
    tenants: str = ""

    def ticked(self, name: str) -> list[str]:
        """The values of the checkboxes `name` that are ticked."""
        values: list[str] | str = getattr(self, name)
        return [values] if isinstance(values, str) else values

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(slug.strip() for slug in self.tenants.split(",") if slug.strip()))

    def selection(self) -> Selection:
        return Selection(
            templates=tuple(self.ticked("templates")),
            modules=tuple(self.ticked("modules")),
            plans=tuple(self.ticked("plans")),
            isolation=tuple(self.ticked("isolation")),
            servers=tuple(self.ticked("servers")),
            tenants=self.slugs,
        )
