"""A new tenant's modules, refused: every problem of the choice at once, the modules named by their
titles (a name that is no module, as it was typed), on the landlord's form (a list, every box left
as it was ticked) and in POST /api/v1/tenants (422 on the field `modules`). Nothing is created."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from services.settings import Settings
from tests.support import Credentials
from tests.web.portal import add_token, assert_no_trace
from tests.web.test_api import assert_json_error
from tests.web.test_api_provisioning import create, errors_by_field
from tests.web.test_provisioning_pages import VALID, counts, field_errors, submit, text_of, ticked_modules

CHOSEN = ["election_campaign", "finance", "simple_ledger", "documents"]
PROBLEMS = [
    "Election campaign needs Events: tick Events too, or untick Election campaign.",
    "Finance and Simple ledger cannot be enabled together: choose one.",
]


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_the_form_lists_a_missing_requirement_and_a_conflict_at_once_and_keeps_the_ticks(
    superadmin_client: TestClient[Any], settings: Settings, htmx: bool
) -> None:
    before = counts(settings)

    response = submit(
        superadmin_client, {**VALID, "template": "political_party", "modules": CHOSEN}, htmx=htmx
    )

    assert response.status_code == 422
    assert_no_trace(response.text)
    listed = re.search(r'<ul class="field-error" id="modules-error">(.*?)</ul>', response.text, re.DOTALL)
    assert listed, "the modules' problems are a list"
    assert [text_of(item) for item in re.findall(r"<li>(.*?)</li>", listed.group(1))] == PROBLEMS
    assert {name for name, on in ticked_modules(response.text).items() if on} == set(CHOSEN)
    assert counts(settings) == before


def test_a_module_that_does_not_exist_is_named_as_typed_beside_the_other_problems(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = submit(
        superadmin_client, {**VALID, "template": "political_party", "modules": [*CHOSEN, "Teleportation"]}
    )

    assert response.status_code == 422
    problems = field_errors(response.text)["modules"].splitlines()
    assert problems[0].startswith(
        "There is no module 'Teleportation': leave it out; the modules are documents,"
    )
    assert problems[1:] == PROBLEMS


def test_the_api_names_every_problem_of_the_modules_on_the_field(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    before = counts(settings)

    response = create(
        client,
        add_token(settings, superadmin.email),
        {"slug": "save-the-owls", "name": "Save the Owls", "template": "political_party", "modules": CHOSEN},
    )

    problem = assert_json_error(response, 422)
    assert problem["field"] == "modules"
    assert errors_by_field(problem) == {"modules": "\n".join(PROBLEMS)}
    assert all(sentence in problem["detail"] for sentence in PROBLEMS)
    assert counts(settings) == before


def test_what_the_plan_does_not_allow_is_listed_with_the_modules_own_problems(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = submit(
        superadmin_client, {**VALID, "template": "political_party", "modules": CHOSEN, "plan": "starter"}
    )

    assert response.status_code == 422
    problems = field_errors(response.text)["modules"].splitlines()
    assert problems[:2] == PROBLEMS
    assert problems[2:] == [
        "The Starter plan does not include Election campaign and Finance.",
        "The Starter plan allows 3 modules, not 4.",
    ], "the plan's refusals come with the rest, not after they are fixed"
