"""A proposed policy keeps the admin's file and replaces one section, and stays valid."""

from __future__ import annotations

from core.learning.policy_text import render_scoring, replace_section
from core.policy import LoadedPolicy, parse_policy
from core.policy.schema import FitRule


def test_given_the_example_policy_when_its_scoring_is_rendered_back_then_the_version_is_unchanged(
    example_policy: LoadedPolicy,
) -> None:
    text = replace_section(example_policy.text, "scoring", render_scoring(example_policy.policy.scoring))
    again = parse_policy(text)
    assert again.version == example_policy.version
    assert "# Routing: ordered rules, first match wins." in text  # the next section's comment stays
    assert text.count("\nscoring:\n") == 1


def test_given_changed_points_and_awkward_strings_when_rendered_then_they_round_trip(
    example_policy: LoadedPolicy,
) -> None:
    scoring = example_policy.policy.scoring
    odd = FitRule.model_validate(
        {"signal": "title", "matches": "(?i)\\bmanager\\b", "points": 7, "label": 'says "manager": yes, no'}
    )
    norway = FitRule.model_validate({"signal": "country", "in": ["NO", "on"], "points": 3})
    changed = scoring.model_copy(update={"fit": [*scoring.fit, odd, norway], "bands": {"hot": 70, "warm": 40}})
    text = replace_section(example_policy.text, "scoring", render_scoring(changed, comment="learned"))
    policy = parse_policy(text).policy
    assert policy.scoring.fit[-2] == odd
    assert policy.scoring.fit[-1].in_ == ["NO", "on"]
    assert policy.scoring.bands == {"hot": 70, "warm": 40}
    assert "# learned\nscoring:" in text


def test_given_a_file_without_the_section_when_replaced_then_it_is_appended() -> None:
    assert replace_section("a: 1\n", "b", "b: 2\n") == "a: 1\n\nb: 2\n"
