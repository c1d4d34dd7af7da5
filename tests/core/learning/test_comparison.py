"""Side-by-side reports count what changes, who reviews, and who agrees with people."""

from __future__ import annotations

from typing import Any

from core.learning.comparison import Pair, compare
from core.learning.labels import Outcome


def _d(action: str, owner: str | None, band: str, total: int, segment: str = "smb") -> dict[str, Any]:
    return {"action": action, "owner": owner, "segment": segment, "score": {"band": band, "total": total}}


def test_given_pairs_when_compared_then_changes_load_and_agreement_are_counted() -> None:
    pairs = [
        Pair("s:1", _d("auto", "ana", "hot", 80), _d("auto", "ana", "hot", 82), "hot", "ana", Outcome(True)),
        Pair("s:2", _d("review", "ben", "warm", 50), _d("auto", "ben", "cold", 30), "cold", "ben", Outcome(False)),
        Pair("s:3", _d("review", "ana", "warm", 47), _d("review", "cy", "warm", 47), None, None, None),
    ]
    report = compare(pairs, days=2.0, top_n=2)
    assert report["changed"] == {"any": 2, "action": 1, "owner": 1, "route": 0, "band": 1}
    assert report["action_changes"] == {"review→auto": 1}
    assert report["band_changes"] == {"warm→cold": 1}
    load = report["review_load"]
    assert (load["before"]["reviews"], load["before"]["per_day"], load["after"]["per_day"]) == (2, 1.0, 0.5)
    assert load["before"]["by_rep_per_day"] == {"ana": 0.5, "ben": 0.5}
    assert report["labels"]["band_agreement"] == {"before": 0.5, "after": 1.0}
    assert report["outcomes"]["known"] == 2 and report["outcomes"]["after"]["auc"] == 1.0
    assert [e["lead"] for e in report["examples"]] == ["s:2", "s:3"]
