"""Reading the fields of the portals' forms the same way on every page."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from services.limits import integer_range


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
