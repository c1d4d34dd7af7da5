"""Policy diffs by meaning: named items are matched by name, not position, and a new order
is reported where order decides (first-match rule lists, the rotation's tie-break)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.policy import LoadedPolicy, parse_policy
from core.policy_diff import policy_changes


def test_given_a_changed_threshold_and_an_inserted_rule_when_diffed_then_only_those_show(
    example_policy: LoadedPolicy,
) -> None:
    before = example_policy.policy
    routing = [before.routing[0].model_copy(update={"name": "vip_first"}), *before.routing]
    after = before.model_copy(
        update={"routing": routing, "scoring": before.scoring.model_copy(update={"bands": {"hot": 70, "warm": 45}})}
    )
    lines = [str(c) for c in policy_changes(before, after)]
    assert "~ scoring.bands.hot: 75 → 70" in lines
    assert any(line.startswith("+ routing[vip_first]") for line in lines)
    assert not any("routing[default]" in line or line.startswith("↕") for line in lines)


def test_given_the_same_policy_when_diffed_then_nothing(example_policy: LoadedPolicy) -> None:
    assert policy_changes(example_policy.policy, example_policy.policy) == []


EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "policy.yaml").read_text()
DEFAULT_ROUTE = "  - {name: default, to: {team: mm}, method: weighted_round_robin}\n"


def _diff(text: str) -> list[str]:
    return [str(c) for c in policy_changes(parse_policy(EXAMPLE).policy, parse_policy(text).policy)]


def _moved_line(text: str, line: str, before: str) -> str:
    assert line in text and before in text, "fixture drifted"
    return text.replace(line, "").replace(before, line + before, 1)


def test_given_the_catch_all_route_moved_to_the_top_when_diffed_then_the_reorder_is_reported() -> None:
    # first match wins: the catch-all on top takes every lead from the rules below it
    text = _moved_line(EXAMPLE, DEFAULT_ROUTE, "  - {name: named_accounts,")
    changes = policy_changes(parse_policy(EXAMPLE).policy, parse_policy(text).policy)
    assert [(c.path, c.kind, c.moved) for c in changes] == [("routing", "reordered", ("default [5→0]",))]
    assert str(changes[0]).startswith("↕ routing: moved default [5→0] (first match wins): named_accounts, ")
    assert str(changes[0]).endswith(
        " → default, named_accounts, existing_customers, marketplace_listings, emea_enterprise, vip_referrals"
    )


def test_given_segments_in_another_order_when_diffed_then_the_reorder_is_reported() -> None:
    smb = "  smb: {employees: {lt: 200}}\n"
    text = _moved_line(EXAMPLE, smb, "  enterprise: {employees:")
    assert _diff(text) == [
        "↕ segments: moved smb [2→0] (first match wins): enterprise, mid_market, smb → smb, enterprise, mid_market"
    ]


@pytest.mark.parametrize(
    ("line", "before", "expected"),
    [
        (
            "  - {when: {trigger: customer_signal, band: cold}, reason: customer_asked_to_pause}\n",
            "  - {when: {title:",
            "↕ suppress: moved customer_asked_to_pause [2→0] (first match wins): "
            "not_a_buyer, personal_email, customer_asked_to_pause → customer_asked_to_pause, not_a_buyer, "
            "personal_email",
        ),
        (
            '  - {when: {band: hot}, code: call_today, label: "Call today: strong fit ({top_signal})"}\n',
            "  - {when: {event: {type: demo_request, within: 1h}}",
            "↕ next_best_action: moved call_today [5→2] (first match wins): ",
        ),
        (
            "    - {after: 30m, do: reroute}\n",
            "    - {do: notify_manager}",
            "↕ sla.on_breach: moved reroute [1→0] (steps due together run in list order)",
        ),
    ],
)
def test_given_an_unnamed_first_match_list_reordered_when_diffed_then_the_moved_rule_is_named(
    line: str, before: str, expected: str
) -> None:
    # these rules have no unique name: they used to be matched by position, so a move showed
    # as edits to every rule in between (or, for routing, not at all)
    lines = _diff(_moved_line(EXAMPLE, line, before))
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_given_reps_reordered_within_a_team_when_diffed_then_the_round_robin_order_change_is_reported() -> None:
    # ties in the rotation go to the rep listed first in the team
    ben = next(line for line in EXAMPLE.splitlines(keepends=True) if "{id: ben," in line)
    ben += next(line for line in EXAMPLE.splitlines(keepends=True) if "timezone: America/Chicago" in line)
    lines = _diff(_moved_line(EXAMPLE, ben, "  - {id: ana,"))
    assert len(lines) == 1 and lines[0].startswith(
        "↕ reps: moved ben [1→0] (round-robin ties go to the rep listed first)"
    ), lines


def test_given_fit_rules_or_reason_codes_reordered_when_diffed_then_nothing_changes_in_meaning() -> None:
    # fit points add up whatever their order; reason codes are a menu
    fit = "    - {signal: employees, gt: 5000, points: 10, label: large company}\n"
    text = _moved_line(EXAMPLE, fit, "    - {signal: employees, between:")
    reason = "  - {code: timing, label: Bad timing — reach out later}\n"
    assert _diff(_moved_line(text, reason, "  - {code: territory_exception,")) == []


def test_given_a_rep_moved_ahead_of_another_teams_reps_when_diffed_then_nothing_changes_in_meaning() -> None:
    lines = EXAMPLE.splitlines(keepends=True)
    dana = next(line for line in lines if "{id: dana," in line)
    dana += next(line for line in lines if "crm: {salesforce: 0055e000001DDDD" in line)
    assert _diff(_moved_line(EXAMPLE, dana, "  - {id: ana,")) == []
