"""The isolation property suite's long run: how many visits it asks for, and what it counted.

CI draws a few hundred visits per backend. `TENANTRY_ISOLATION_VISITS=10000` (what `make
isolation-long` sets) asks for that many in all, half on each backend, a share of them concurrent;
the suite tallies every answer it checked here, and tests/web/conftest.py prints the tally as the
run's closing line.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

#: The visits a long run asks for across both backends; 0 (unset) is CI's run.
LONG_RUN_VISITS = int(os.environ.get("TENANTRY_ISOLATION_VISITS") or "0")
BACKEND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
#: How a visit to no tenant is counted: the superadmin's API calls, not switched into any tenant.
NO_TENANT = "no tenant"


@dataclass
class Tally:
    """Answers checked in this process, by backend, by the isolation mode of the tenant asked and
    by whether they were asked concurrently; and the wrong ones."""

    answers: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)

    def count(self, backend: str, mode: str, *, concurrently: bool) -> None:
        self.answers[backend, mode, concurrently] += 1

    def total(self, backend: str | None = None, *, concurrently: bool | None = None) -> int:
        return sum(
            count
            for (asked, _, together), count in self.answers.items()
            if backend in (None, asked) and concurrently in (None, together)
        )

    def closing_note(self, failed_tests: int) -> list[str]:
        """The long run's count and result, a line for the whole and one per backend."""
        if not self.total() and not failed_tests:
            return ["isolation long run: no visits were checked in this process (run it without -n)"]
        backends = ", ".join(f"{name} {self.total(backend):,}" for backend, name in BACKEND_NAMES.items())
        if self.wrong or failed_tests:
            result = f"FAILED: {len(self.wrong):,} wrong answers, {failed_tests} failed tests"
        else:
            result = "0 wrong answers"
        result += "".join(
            f", {name} NOT RUN" for backend, name in BACKEND_NAMES.items() if not self.total(backend)
        )
        lines = [
            f"isolation long run: {self.total():,} visits, {LONG_RUN_VISITS:,} asked for "
            f"({backends}; {self.total(concurrently=True):,} of them concurrent), {result}"
        ]
        for backend, name in BACKEND_NAMES.items():
            if not self.total(backend):
                lines.append(
                    f"  {name}: NOT RUN (skipped or deselected; PostgreSQL needs TENANTRY_TEST_POSTGRES_URL)"
                )
                continue
            modes: Counter[str] = Counter()
            for (asked, mode, _), count in self.answers.items():
                if asked == backend:
                    modes[mode] += count
            lines.append(
                f"  {name}: " + " · ".join(f"{mode} {count:,}" for mode, count in sorted(modes.items()))
            )
        lines += [f"  wrong: {failure}" for failure in self.wrong[:20]]
        return lines


TALLY = Tally()
