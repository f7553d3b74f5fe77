"""What a column can hold, read from the column itself: the range of an integer column and the
length of a text column. Input is held to these before the database sees it, so both backends
answer alike: SQLite would keep a 100,000-character name in a VARCHAR(200) and an integer of any
size until it overflows, where PostgreSQL refuses both, and NUL characters too.

Services check their own fields with `check_text` (the message names the field); every flush is
checked once more here (`refuse_what_columns_cannot_hold`), so no text a column cannot hold
reaches the database from any session, landlord or tenant, whoever forgot to check it.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import BigInteger, Integer, SmallInteger, String, event, inspect
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.types import TypeEngine

from services.errors import InvalidInput


class Typed(Protocol):
    """A column, or a model's attribute for one: what it holds is its type."""

    @property
    def type(self) -> TypeEngine[Any]: ...


#: Whole-number types by the bits their values have (a sign aside), widest first: BigInteger and
#: SmallInteger are kinds of Integer.
_INTEGER_BITS = ((BigInteger, 63), (SmallInteger, 15), (Integer, 31))
#: No integer column of either backend holds more.
WIDEST_INTEGER = (-(2**63), 2**63 - 1)


def integer_range(kind: TypeEngine[Any]) -> tuple[int, int]:
    """The smallest and largest value an integer column of type `kind` holds, on every backend
    (PostgreSQL's int2/int4/int8; SQLite keeps more in an INTEGER, but the column says less)."""
    bits = next((bits for integer_type, bits in _INTEGER_BITS if isinstance(kind, integer_type)), 63)
    return -(2**bits), 2**bits - 1


def holds(column: Typed, value: int) -> bool:
    """Whether the integer column `column` can hold `value`: an id beyond it names no row."""
    low, high = integer_range(column.type)
    return low <= value <= high


def text_length(column: Typed) -> int | None:
    """The most characters `column` holds; None for text of any length."""
    return column.type.length if isinstance(column.type, String) else None


def text_problem(value: str, max_length: int | None) -> str | None:
    """What keeps `value` out of a text column of `max_length` characters, said to a person."""
    if "\x00" in value:
        return "Text cannot contain NUL characters."
    if max_length is not None and len(value) > max_length:
        return f"At most {max_length} characters; this has {len(value)}."
    return None


def check_text(value: str, column: Typed, *, field: str) -> str:
    """`value`, if `column` can hold it; otherwise InvalidInput on `field`."""
    if (problem := text_problem(value, text_length(column))) is not None:
        raise InvalidInput(problem, field=field)
    return value


@event.listens_for(Session, "before_flush")
def refuse_what_columns_cannot_hold(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    """Every new or changed row's text, against its column, before it is written."""
    for row in (*session.new, *session.dirty):
        state = inspect(row)
        for attribute in state.mapper.column_attrs:
            value = state.dict.get(attribute.key)  # what is loaded: reading more would query
            if not isinstance(value, str):
                continue
            column = attribute.columns[0]
            if (problem := text_problem(value, text_length(column))) is not None:
                raise InvalidInput(problem, field=attribute.key)
