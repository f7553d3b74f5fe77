"""A tenant to split: harbour-club-like, with a North district and its Ward under the root,
venues where the test puts them, and Wanda, a member assigned to the Ward (so she follows it)."""

from __future__ import annotations

from services.settings import Settings
from tests.web.tenant_world import add_member, add_rows, add_units, provision

WANDA = "wanda@harbour.example"


def tenant_with_a_district(settings: Settings, slug: str, venues: list[tuple[str, str]]) -> dict[str, int]:
    """`slug` with the events module, the units North (under the root) and Ward (under North), a
    venue per (name, unit name or "root") and Wanda; the units' ids by name, the root's as "root"."""
    provision(settings, slug, modules=["events"])
    units = add_units(settings, slug, [("North", None), ("Ward", "North")])
    add_rows(settings, slug, "venues", [{"name": name, "unit_id": units[unit]} for name, unit in venues])
    add_member(settings, slug, WANDA, unit_ids=[units["Ward"]])
    return units
