"""A switch's reason is read in the audit trail: it must show something, and hide nothing."""

from __future__ import annotations

import pytest

from services.errors import InvalidInput
from services.tenancy.switching import check_reason


@pytest.mark.parametrize(
    "reason",
    [
        "\u200b",  # zero-width space (Cf)
        " \u00a0\u2003\u3000 ",  # spaces of every width (Zs)
        "\u2028\u2029",  # line and paragraph separators (Zl, Zp)
        "\u0301\u0308",  # combining marks with nothing to sit on (Mn)
        "\ufeff\u200c\u200d\u2060",  # byte order mark, joiners, word joiner (Cf)
    ],
)
def test_a_reason_that_shows_nothing_is_refused(reason: str) -> None:
    with pytest.raises(InvalidInput, match=r"^Say (in words )?why") as refused:
        check_reason(reason)

    assert refused.value.field == "reason"


@pytest.mark.parametrize(
    "reason",
    [
        "\x00",
        "Ticket 4711\x00",
        "Ticket 4711\x1b[8m hidden",  # a terminal escape
        "Ticket 4711\x7f",  # DEL
        "Ticket\x9b4711",  # a C1 control
        "Ticket \u202e1174",  # right-to-left override: would read "Ticket 4711"
        "Ticket \u2066 4711",  # left-to-right isolate
        "Ticket \ud800 4711",  # half a surrogate pair
    ],
)
def test_a_reason_holding_a_control_character_is_refused_naming_it(reason: str) -> None:
    with pytest.raises(InvalidInput, match=r"control character \(U\+[0-9A-F]{4}\)") as refused:
        check_reason(reason)

    assert refused.value.field == "reason"


@pytest.mark.parametrize(
    "reason",
    [
        "Ticket 4711",
        "The treasurer cannot open the March ledger.\r\nSee ticket 4711.\tUrgent.",  # as a textarea sends it
        "Cafe\u0301 owner asked",  # a combining accent on a letter
        "Familie 👨\u200d👩\u200d👧 Müller",  # joiners inside an emoji
        "طلب الدعم ٤٧١١",  # right-to-left text needs no override
        "🔥",
    ],
)
def test_a_readable_reason_is_kept_as_typed(reason: str) -> None:
    assert check_reason(f"  {reason}  ") == reason
