"""CSV for people to open in a spreadsheet: every CSV the portal exports is written here, so no
cell typed by someone else (an email at the sign-in form, a name, a reason) runs as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

#: A spreadsheet reads a cell starting with one of these as a formula (OWASP's CSV injection list,
#: with the line feed and NUL that some importers also treat as a cell's start).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def spreadsheet_cell(value: object) -> object:
    """`value` as a spreadsheet shows it without evaluating it: text that would start a formula
    gets a leading single quote (OWASP's rule); numbers, which nobody typed, and None (an empty
    cell) are left as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_document(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header row and `rows`, every cell neutralised by `spreadsheet_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([spreadsheet_cell(value) for value in row] for row in rows)
    return buffer.getvalue()
