"""The weekly digest's figures against values computed by hand on a small week (2026-W47 in
New York: Monday 16 Nov 05:00 UTC to Monday 23 Nov 05:00 UTC)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from core.digest import last_complete_week, psi, rank_offset, week_bounds
from core.store.audit_log import AuditRecord, append
from core.store.db import Database
from core.store.digest import _sample, weekly_digest
from core.store.models import Lead, TrustState
from tests.builders import make_policy
from tests.store.digest_builders import DigestWorld

REASONS = [
    {"code": "territory_exception", "label": "Territory exception"},
    {"code": "not_a_fit", "label": "Not a fit"},
    {"code": "data_quality", "label": "Bad data", "applies_to": ["override", "flag"]},
]
POLICY = make_policy(reason_codes=REASONS, digest={"channel": "C0LEAD", "timezone": "America/New_York"})
MON = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # the next Monday 08:00 in New York
H, M = timedelta(hours=1), timedelta(minutes=1)


def day(n: int, hour: int = 10) -> datetime:
    """Day n of the week (0 = Monday) at ``hour`` New York time (EST, UTC-5)."""
    return MON + timedelta(days=n, hours=hour - 10)


@pytest.fixture
def world(db: Database) -> DigestWorld:
    w = DigestWorld(db)
    # the week
    w.decision("d1", day(0), score=82, band="hot", audit_sample=True)
    w.decision("d2", day(0, 11), score=55, band="warm")
    w.decision("d3", day(1), segment="enterprise", country="DE", score=91, band="hot", audit_sample=True)
    w.decision("d4", day(1), action="review", segment="enterprise", country="de", score=77, band="hot")
    w.decision("d5", day(2), action="review", score=48, band="warm")
    w.decision("d6", day(2), action="review", segment="enterprise", country="GB", score=35, band="cold")
    w.decision("d7", day(3), action="suppress", score=12, band="cold", owner=None)
    w.decision("d8", day(4), action="suppress", country=None, score=5, band="cold", owner=None)
    w.decision("d9", day(6, 23), segment="enterprise", score=66, band="warm")  # Sunday 23:00: still this week
    w.decision("shadow", day(1), shadow=True, score=99, band="hot", audit_sample=True)
    w.decision("next_week", day(7, 1), score=99, band="hot")  # Monday 01:00 of W48
    # the four weeks before: the conversion cohort and the drift baseline
    for name, score, band, converted, outcome in [
        ("b1", 80, "hot", True, None), ("b2", 85, "hot", True, None), ("b3", 90, "hot", False, None),
        ("b4", 50, "warm", False, "won"), ("b5", 55, "warm", False, None), ("b6", 60, "warm", False, None),
        ("b7", 20, "cold", False, None), ("b8", 30, "cold", False, None),
    ]:  # fmt: skip
        w.decision(name, day(-10), score=score, band=band, converted=converted, outcome=outcome)
    w.decision("b_changed", day(-3), cause="changed", score=45, band="warm", converted=True)  # drift: yes, cohort: no
    w.decision("b_shadow", day(-3), shadow=True, score=45, band="warm", converted=True)
    w.decision("b_old", day(-40), score=99, band="hot", converted=True)  # before the cohort

    # clocks started this week
    w.clock("d1", "first_touch", day(0), due=15 * M, met=10 * M)  # in time, 600 s
    w.clock("d2", "first_touch", day(0, 11), due=4 * H, met=5 * H)  # late, 18000 s
    w.clock("d3", "first_touch", day(1), due=15 * M, state="rerouted", breached_at=day(1) + 15 * M)  # never
    w.clock("d4", "review", day(1), due=2 * H, met=30 * M)  # 1800 s
    w.clock("d5", "review", day(2), due=2 * H, met=H)  # 3600 s
    w.clock("d6", "review", day(2), due=2 * H, state="cancelled")  # superseded: not counted
    w.clock("d9", "first_touch", day(6, 23), due=11 * H)  # due Monday 10:00: still running
    w.clock("d7", "first_touch", day(3), due=None, met=2 * H)  # no deadline: speed only, 7200 s
    w.clock("b1", "first_touch", day(-10), due=15 * M, met=H)  # an older week

    # people
    w.review("d4", day(1, 11), rep="ana", agree=True, segment="enterprise")
    w.review("d5", day(2, 12), rep="lee", agree=False, kind="override", reason="not_a_fit")
    w.review("b5", day(3), rep="lee", agree=False, kind="reassign", reason="territory_exception")
    w.review("b6", day(-2), rep="ben", agree=False, kind="override", reason="not_a_fit")  # last week
    w.verdict("d1", day(5), verdict="flag", reason="data_quality")
    w.verdict("d3", day(5), verdict="confirm")
    return w


def _trust_change(db: Database) -> None:
    with db.transaction() as s:
        s.add(TrustState(segment="smb", level=1, pinned=False, since=day(3), reason="agreement 0%"))
        append(s, [AuditRecord(day(3), "loopgate", "trust.demoted", "segment:smb", {"from": 2, "to": 1})])
        append(s, [AuditRecord(day(-3), "loopgate", "trust.promoted", "segment:smb", {"from": 1, "to": 2})])


def test_given_a_week_of_decisions_when_the_digest_counts_it_then_every_figure_matches_the_hand_count(
    db: Database, world: DigestWorld
) -> None:
    _trust_change(db)
    with db.sessions() as s:
        d = weekly_digest(s, POLICY, week="2026-W47", now=NOW)

    assert (d.start, d.end) == (datetime(2026, 11, 16, 5, tzinfo=UTC), datetime(2026, 11, 23, 5, tzinfo=UTC))
    assert d.decisions == 9 and d.actions == {"auto": 4, "review": 3, "suppress": 2}
    assert d.share("auto") == pytest.approx(4 / 9)
    assert [(c.day, c.auto, c.review, c.suppress) for c in d.daily] == [
        (date(2026, 11, 16), 2, 0, 0), (date(2026, 11, 17), 1, 1, 0), (date(2026, 11, 18), 0, 2, 0),
        (date(2026, 11, 19), 0, 0, 1), (date(2026, 11, 20), 0, 0, 1), (date(2026, 11, 21), 0, 0, 0),
        (date(2026, 11, 22), 1, 0, 0),
    ]  # fmt: skip

    # speed: all met clocks [600, 1800, 3600, 7200, 18000] → median rank 3, p90 rank 5
    assert (d.speed["all"].n, d.speed["all"].median, d.speed["all"].p90) == (5, 3600, 18000)
    assert (d.speed["review"].n, d.speed["review"].median, d.speed["review"].p90) == (2, 1800, 3600)
    assert (d.speed["first_touch"].median, d.speed["first_touch"].p90) == (7200, 18000)
    # attainment: first touch 1 in time, 2 late or never, 1 running; reviews 2 in time
    assert (d.sla["first_touch"].met, d.sla["first_touch"].missed, d.sla["first_touch"].pending) == (1, 2, 1)
    assert (d.sla["review"].met, d.sla["review"].missed, d.sla["review"].pending) == (2, 0, 0)
    assert d.sla["all"].rate == pytest.approx(3 / 5)

    # people: 3 reviews this week, 2 changed the proposal
    assert (d.reviews, d.overrides) == (3, 2) and d.override_rate == pytest.approx(2 / 3)
    assert [(r.code, r.overrides, r.flags) for r in d.by_reason] == [
        ("data_quality", 0, 1),
        ("not_a_fit", 1, 0),
        ("territory_exception", 1, 0),
    ]
    assert [(r.rep, r.reviews, r.overrides) for r in d.by_rep] == [("lee", 2, 2), ("ana", 1, 0)]
    segments = {s.segment: s for s in d.segments}
    assert (segments["enterprise"].verdicts, segments["enterprise"].agreed, segments["enterprise"].level) == (2, 2, 3)
    assert (segments["smb"].verdicts, segments["smb"].agreed, segments["smb"].level) == (3, 0, 1)
    assert segments["smb"].changes == ("demoted 2→1",)

    # conversion: cohort of 8 first decisions, 3 converted (b4 through a won deal)
    assert [(b.band, b.leads, b.converted) for b in d.conversion] == [("hot", 3, 2), ("warm", 3, 1), ("cold", 2, 0)]
    assert [b.lift for b in d.conversion] == pytest.approx([(2 / 3) / (3 / 8), (1 / 3) / (3 / 8), 0.0])

    # drift: ten 10-point bins, this week against the four before (b_changed counts, shadow not)
    assert d.drift.current == (1, 1, 0, 1, 1, 1, 1, 1, 1, 1)
    assert d.drift.baseline == (0, 0, 1, 1, 1, 2, 1, 0, 2, 1)
    expected = sum(
        (max(a / 9, 1e-4) - max(e / 9, 1e-4)) * math.log(max(a / 9, 1e-4) / max(e / 9, 1e-4))
        for a, e in zip(d.drift.current, d.drift.baseline, strict=True)
    )
    assert d.drift.psi == pytest.approx(expected)

    # fairness
    assert [(f.group, f.n, f.review, f.suppress) for f in d.fairness_segment] == [
        ("smb", 5, 1, 2),
        ("enterprise", 4, 2, 0),
    ]
    assert [(f.group, f.n, f.review, f.suppress) for f in d.fairness_country] == [
        ("US", 5, 1, 1),
        ("DE", 2, 1, 0),
        ("GB", 1, 1, 0),
        ("unknown", 1, 0, 1),
    ]

    # the audit sample: this week's flagged automatic decisions, with the verdicts given
    assert d.sampled_total == 2
    assert {(i.decision_pk, i.verdicts) for i in d.sample} == {
        (world.made["d1"], ("flag",)),
        (world.made["d3"], ("confirm",)),
    }
    assert d.as_dict()["shares"]["review"] == pytest.approx(3 / 9)


def test_given_a_week_of_flagged_decisions_when_sampled_then_the_draw_is_random_reproducible_and_seeded_by_the_week(
    db: Database,
) -> None:
    w = DigestWorld(db)
    pks = [w.decision(f"f{i}", day(1) + i * M, audit_sample=True) for i in range(60)]
    start, end = week_bounds("2026-W47", "America/New_York")

    with db.sessions() as s:
        first = [i.decision_pk for i in weekly_digest(s, POLICY, week="2026-W47", now=NOW).sample]
        again = [i.decision_pk for i in weekly_digest(s, POLICY, week="2026-W47", now=NOW + H).sample]
        # the same decisions drawn for another week's label: the week is the seed
        other, total = _sample(s, POLICY, "2026-W48", start, end, 10)

    assert first == again and len(set(first)) == 10 and set(first) <= set(pks) and total == 60
    assert {i.decision_pk for i in other} != set(first)
    # not a lattice: an order by (pk × K + seed) mod P picks consecutive keys at no more than
    # three distinct spacings (the three-gap theorem), the same for every week
    positions = sorted(pks.index(pk) for pk in first)
    assert len({b - a for a, b in itertools.pairwise(positions)}) > 3


def test_given_flagged_decisions_replaced_or_deleted_since_when_sampled_then_only_standing_ones_are_drawn(
    db: Database,
) -> None:
    w = DigestWorld(db)
    standing = w.decision("standing", day(1), audit_sample=True)
    w.decision("edited", day(1), audit_sample=True)
    w.decision("edited_again", day(2), again="edited")  # a newer decision for the same lead
    w.decision("deleted", day(1), audit_sample=True)
    w.decision("shadowed", day(1), audit_sample=True)
    w.decision("shadow_of_it", day(2), again="shadowed", shadow=True)  # a shadow replaces nothing
    with db.transaction() as s:
        s.execute(update(Lead).where(Lead.first_name == "deleted").values(is_deleted=True))

    with db.sessions() as s:
        d = weekly_digest(s, POLICY, week="2026-W47", now=NOW)

    assert sorted(i.decision_pk for i in d.sample) == sorted([standing, w.made["shadowed"]])
    assert d.sampled_total == 2


def test_given_breached_clocks_a_later_decision_cancelled_when_counted_then_they_are_missed(db: Database) -> None:
    w = DigestWorld(db)
    w.decision("edited", day(0), action="review")
    w.decision("owner_changed", day(0), score=82, band="hot")
    w.decision("went_elsewhere", day(1), score=82, band="hot")
    # the scan recorded the breach and told the manager; then the lead was decided again
    w.clock("edited", "review", day(0), due=2 * H, state="cancelled", breached_at=day(0) + 2 * H)
    w.clock("owner_changed", "first_touch", day(0), due=15 * M, state="cancelled", breached_at=day(0) + 15 * M)
    w.clock("went_elsewhere", "first_touch", day(1), due=15 * M, state="cancelled")  # before its deadline

    with db.sessions() as s:
        d = weekly_digest(s, POLICY, week="2026-W47", now=NOW)

    assert (d.sla["review"].met, d.sla["review"].missed, d.sla["review"].pending) == (0, 1, 0)
    assert (d.sla["first_touch"].met, d.sla["first_touch"].missed, d.sla["first_touch"].pending) == (0, 1, 0)


@pytest.mark.parametrize(
    ("week", "monday", "sunday_2330_utc"),
    [
        ("2026-W10", date(2026, 3, 2), datetime(2026, 3, 9, 3, 30, tzinfo=UTC)),  # springs forward Sunday: 6 d 23 h
        ("2026-W44", date(2026, 10, 26), datetime(2026, 11, 2, 4, 30, tzinfo=UTC)),  # falls back Sunday: 7 d 1 h
    ],
)
def test_given_a_week_the_clocks_change_when_counted_per_day_then_seven_days_and_sunday_night_is_on_sunday(
    db: Database, week: str, monday: date, sunday_2330_utc: datetime
) -> None:
    w = DigestWorld(db)
    start, _ = week_bounds(week, "America/New_York")
    w.decision("monday_0030", start + 30 * M)
    w.decision("sunday_2330", sunday_2330_utc)  # 23:30 in New York, after the change
    with db.sessions() as s:
        d = weekly_digest(s, POLICY, week=week, now=NOW)
    assert d.decisions == 2
    assert [(c.day, c.auto) for c in d.daily] == [(monday + timedelta(days=i), int(i in (0, 6))) for i in range(7)]


def test_given_an_empty_week_when_counted_then_rates_are_none_not_errors(db: Database) -> None:
    with db.sessions() as s:
        d = weekly_digest(s, POLICY, week="2026-W47", now=NOW)
    assert (d.decisions, d.share("auto"), d.override_rate, d.drift.psi, d.sla["all"].rate) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert d.speed["all"] == d.speed["review"] and d.speed["all"].median is None
    assert d.sample == [] and not d.has_outcomes


@pytest.mark.parametrize(
    ("now", "week"),
    [
        (datetime(2026, 11, 23, 13, tzinfo=UTC), "2026-W47"),  # Monday morning in New York
        (datetime(2026, 11, 23, 4, tzinfo=UTC), "2026-W46"),  # still Sunday night in New York
        (datetime(2027, 1, 4, 13, tzinfo=UTC), "2026-W53"),  # 2026 has 53 ISO weeks
    ],
)
def test_given_a_moment_when_asking_for_the_last_complete_week_then_it_is_counted_in_the_digest_zone(
    now: datetime, week: str
) -> None:
    assert last_complete_week(now, "America/New_York") == week


def test_given_percentile_and_psi_helpers_when_used_then_they_follow_the_documented_definitions() -> None:
    assert [rank_offset(0.5, n) for n in (1, 2, 4, 5)] == [0, 0, 1, 2]
    assert rank_offset(0.9, 10) == 8
    assert psi([10, 10], [10, 10]) == 0 and psi([0, 0], [1, 1]) is None
    with pytest.raises(ValueError, match="ISO week"):
        week_bounds("2026-47", "UTC")
