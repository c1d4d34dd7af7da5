"""The per-lead values of core.model: the positional builders make what the classes make."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from core.model import Decision, Event, Evidence, Lead, NextBestAction, Route, Score, Trigger, positional_builder

_AT = datetime(2026, 11, 20, 15, tzinfo=UTC)


def _values(instance: object) -> list[object]:
    return [getattr(instance, f.name) for f in dataclasses.fields(instance)]  # type: ignore[arg-type]


def test_given_a_lead_when_built_positionally_then_every_field_is_what_the_class_sets() -> None:
    lead = Lead(
        "L1", "hubspot", "a@B.test", "Ann", "Lee", "CTO", "B", "b.test", "software", 12, 3.0, "NO", "CA",
        "web", 4.0, "101", _AT, _AT, (Event("webinar", _AT),), {"x": 1}, {"employees": "bad"},
    )  # fmt: skip
    built = positional_builder(Lead)(*_values(lead))
    assert type(built) is Lead
    assert _values(built) == _values(lead) and built.email_domain == "b.test"


def test_given_a_decision_when_built_positionally_then_it_equals_the_class_built_one() -> None:
    decision = Decision(
        "L1", "hubspot", "review", "ana", "rep", Route("default", "round_robin", "ana", "rep", "why", "mm"), "smb",
        Score(1, 2, 3, 6, "cold", 0.5, 0.5), (Trigger("vip", "detail", False),),
        (Evidence("title", "CTO", 1, "fit.title"),), NextBestAction("nurture", "Nurture"), 2, False, None, "v1", _AT,
        "explained",
    )  # fmt: skip
    built = positional_builder(Decision)(*_values(decision))
    assert built == decision and _values(built) == _values(decision)


def test_given_a_built_value_when_assigned_then_it_is_as_frozen_as_the_class_makes_it() -> None:
    built = positional_builder(Lead)(*_values(Lead("L1")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.id = "L2"  # type: ignore[misc]
    assert dataclasses.replace(built, id="L2").id == "L2"


def test_given_too_few_values_when_built_then_refused_rather_than_half_set() -> None:
    with pytest.raises(TypeError, match="missing"):
        positional_builder(Lead)("L1", "hubspot")
