"""The isolation long run's closing line, after everything else pytest reports."""

from __future__ import annotations

import pytest

from tests.web.isolation_long_run import LONG_RUN_VISITS, TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LONG_RUN_VISITS:
        return
    failed = [
        report
        for report in terminalreporter.stats.get("failed", [])
        if "test_isolation_property" in getattr(report, "nodeid", "")
    ]
    terminalreporter.write_sep("=", "isolation long run")
    for line in TALLY.closing_note(failed_tests=len(failed)):
        terminalreporter.write_line(line)
