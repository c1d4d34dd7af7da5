"""Regressions found in review of the trust rules: each test reproduces a bug, fixed since."""

from __future__ import annotations

from core.policy.schema import Trust


def test_given_a_single_audit_sample_rate_when_sampling_level_4_then_it_is_lower_than_level_3() -> None:
    """DESIGN §5: level 3 is 'periodic audit (auto decisions sampled)', level 4 'strategic
    oversight (only hard triggers reviewed, lower sample)'. DESIGN's own sketch writes
    ``audit_sample: 0.15`` — and with a single rate level 4 is sampled exactly as level 3."""
    trust = Trust(audit_sample=0.15)

    assert trust.sample_rate(4) < trust.sample_rate(3), (trust.sample_rate(3), trust.sample_rate(4))
