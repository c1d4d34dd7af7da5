"""Policy diffs by meaning: named items are matched by name, not position."""

from __future__ import annotations

from core.policy import LoadedPolicy
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
    assert not any("routing[default]" in line for line in lines)


def test_given_the_same_policy_when_diffed_then_nothing(example_policy: LoadedPolicy) -> None:
    assert policy_changes(example_policy.policy, example_policy.policy) == []
