"""What a tenant's admin may enable or disable, checked whole: every reason a change is refused is
given at once, a line each, naming the modules by their titles (names that are no module, as they
were typed). The rules over the layers on disk and the plans every installation starts with."""

from __future__ import annotations

import pytest

from services.layers.catalogue import ModuleProblems
from services.models import Plan
from services.modules.requests import (
    ModuleChangeRefused,
    ModuleState,
    RequirementsNotOffered,
    plan_disable,
    plan_enable,
)
from tests.services.layers.stores import catalogue

STARTER = Plan(
    key="starter",
    name="Starter",
    modules=["documents", "events", "membership_tiers", "simple_ledger"],
    max_modules=3,
)
STANDARD = Plan(key="standard", name="Standard", modules=None, max_modules=None)


def state(plan: Plan, enabled: tuple[str, ...], kept: tuple[str, ...] = ()) -> ModuleState:
    return ModuleState("political_party", plan, enabled, kept)


def refused_enabling(at: ModuleState, *modules: str) -> ModuleChangeRefused:
    with pytest.raises(ModuleChangeRefused) as refused:
        plan_enable(catalogue(), at, modules)
    assert refused.value.message == "\n".join(refused.value.problems), "the message has a line each"
    return refused.value


def test_enabling_several_modules_names_every_reason_at_once() -> None:
    refused = refused_enabling(
        state(STANDARD, ("finance", "events", "volunteering")), "simple_ledger", "events", "documents"
    )

    assert refused.problems == (
        "Events is enabled already.",
        "Simple ledger conflicts with Finance, which is enabled: disable Finance first.",
    )
    assert refused.in_the_way == ("events", "finance")


def test_two_modules_that_conflict_are_refused_together_with_the_plan_and_its_limit() -> None:
    refused = refused_enabling(
        state(STARTER, ("documents", "events")), "finance", "simple_ledger", "membership_tiers"
    )

    assert refused.problems == (
        "The Starter plan does not include Finance.",
        "Finance and Simple ledger cannot be enabled together: choose one.",
        "The Starter plan allows 3 modules and 2 are enabled: enabling Finance, Simple ledger and "
        "Membership tiers would make 5. Disable a module first, or ask for a larger plan.",
    )
    assert refused.in_the_way == ("finance", "simple_ledger")


def test_names_that_are_no_module_are_named_as_typed_all_at_once() -> None:
    with pytest.raises(ModuleProblems) as refused:
        plan_enable(catalogue(), state(STANDARD, ()), ["events", "teleportation", "Finance"])

    assert refused.value.problems == (
        "There are no modules 'teleportation' and 'Finance': leave them out; the modules are documents, "
        "election_campaign, events, finance, membership_tiers, simple_ledger, social_media and volunteering.",
    )
    assert refused.value.field == "modules"


def test_dropping_a_module_names_the_enabled_and_the_kept_modules_that_need_it_at_once() -> None:
    with pytest.raises(ModuleChangeRefused) as refused:
        plan_disable(
            catalogue(),
            state(STANDARD, ("events", "election_campaign"), kept=("volunteering",)),
            "events",
            keep_data=False,
        )

    assert refused.value.problems == (
        "Events is required by Election campaign, which is enabled: disable Election campaign first.",
        "The kept data of Volunteering refers to the tables of Events: drop that data first, or keep "
        "the data of Events.",
    )
    assert refused.value.in_the_way == ("election_campaign", "volunteering")


def test_each_module_that_brings_another_is_named_with_what_it_brings() -> None:
    plan = plan_enable(catalogue(), state(STANDARD, ()), ["election_campaign", "volunteering", "documents"])

    offer = RequirementsNotOffered(catalogue(), plan)

    assert offer.message.splitlines() == [
        "Election campaign needs Events, which is not enabled: enable Events too, or leave Election "
        "campaign out.",
        "Volunteering needs Events, which is not enabled: enable Events too, or leave Volunteering out.",
    ]
    assert offer.field == "modules"
