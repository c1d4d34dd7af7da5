"""Trust levels in the store: recompute them from verdicts, pin and unpin, report status.

**Who calls recompute**: :func:`recompute_trust` is a plain function of a session. The
scheduler runs it after each outbox drain that settled reviews (and at least every few
minutes); the bot may also call it in the transaction that stores a review, so a demotion
takes effect before the next lead. Running it twice changes nothing the second time.

Every change is written with compare-and-set (the row must still hold the level we read), so
two replicas recomputing at once cannot both promote; the one that loses changes nothing.
Each change is audited (``trust.promoted`` / ``trust.demoted`` / ``trust.capped`` /
``trust.pinned`` / ``trust.unpinned``) and announced with a ``slack.message`` outbox row.

A segment without a row is at the policy's starting level (``trust.segments``, else
``trust.default_level``); once a segment has a row, the row wins — change a level with
``loopgate trust pin``, not by editing the policy's starting levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import CoreError
from core.learning.announce import announcement_channels, trust_message
from core.learning.labels import Agreement, agreement, agreement_by
from core.learning.trust_levels import Assessment, LevelState, Move, assess, counting_verdicts
from core.policy import LoadedPolicy
from core.store import audit_log, outbox
from core.store.audit_log import AuditRecord
from core.store.db import dialect_insert
from core.store.labels import verdicts
from core.store.models import TrustState

__all__ = [
    "SegmentStatus",
    "TrustError",
    "pin",
    "recompute_trust",
    "segments_of",
    "status_rows",
    "trust_status",
    "unpin",
]


class TrustError(CoreError):
    """A trust command that cannot be applied (unknown segment, level out of range)."""


def segments_of(loaded: LoadedPolicy) -> list[str]:
    """The policy's segments in order, then its default segment."""
    policy = loaded.policy
    return list(dict.fromkeys([*policy.segments, policy.default_segment]))


def _states(session: Session, loaded: LoadedPolicy) -> dict[str, LevelState]:
    trust = loaded.policy.trust
    states = {s: LevelState(s, trust.segments.get(s, trust.default_level)) for s in segments_of(loaded)}
    for row in session.execute(select(TrustState)).scalars():
        states[row.segment] = LevelState(row.segment, row.level, row.pinned, row.since)
    return states


def _set_level(session: Session, state: LevelState, level: int, *, pinned: bool, reason: str, now: datetime) -> bool:
    """Compare-and-set the segment's row; False when someone else changed it first."""
    exists = session.execute(select(TrustState.segment).where(TrustState.segment == state.segment)).first()
    if exists is None:
        stmt = (
            dialect_insert(session, TrustState)
            .values(segment=state.segment, level=level, pinned=pinned, since=now, reason=reason[:2000])
            .on_conflict_do_nothing(index_elements=["segment"])
            .returning(TrustState.segment)
        )
        return session.execute(stmt).first() is not None
    result = session.execute(
        update(TrustState)
        .where(
            TrustState.segment == state.segment,
            TrustState.level == state.level,
            TrustState.pinned.is_(state.pinned),
        )
        .values(level=level, pinned=pinned, since=now, reason=reason[:2000])
        .returning(TrustState.segment)
    )
    return result.first() is not None


def _record(session: Session, loaded: LoadedPolicy, move: Move, *, now: datetime, actor: str) -> None:
    kind = {"promote": "promoted", "demote": "demoted", "cap": "capped", "pin": "pinned", "unpin": "unpinned"}
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                actor,
                f"trust.{kind[move.kind]}",
                f"segment:{move.segment}",
                {
                    "from": move.from_level,
                    "to": move.to_level,
                    "reason": move.reason,
                    "policy_version": loaded.version,
                },
            )
        ],
    )
    for channel in announcement_channels(loaded.policy):
        payload = trust_message(channel, move, by=actor, policy_version=loaded.version)
        key = f"slack.message:trust:{move.segment}:{move.kind}:{move.from_level}-{move.to_level}:{now.isoformat()}"
        outbox.enqueue(session, "slack.message", f"{key}:{channel}"[:200], payload, now=now)


def recompute_trust(session: Session, loaded: LoadedPolicy, *, now: datetime, actor: str = "loopgate") -> list[Move]:
    """Move every segment whose verdicts earned it (see :mod:`core.learning.trust_levels`);
    returns the moves made (audited and announced in the caller's transaction)."""
    states = _states(session, loaded)
    found = verdicts(session, policy_version=loaded.version)
    moves: list[Move] = []
    for state in states.values():
        result = assess(state, counting_verdicts(found, state, loaded.version), loaded.policy.trust)
        move = result.move
        if move is None:
            continue
        # only a cap moves a pinned segment, and it stays pinned (at the policy's max_level)
        if _set_level(session, state, move.to_level, pinned=state.pinned, reason=move.reason, now=now):
            _record(session, loaded, move, now=now, actor=actor)
            moves.append(move)
    return moves


def pin(session: Session, loaded: LoadedPolicy, segment: str, level: int, *, now: datetime, by: str) -> Move:
    """Fix a segment at ``level`` until unpinned (audited, announced)."""
    states = _states(session, loaded)
    if segment not in states:
        raise TrustError(f"unknown segment '{segment}': the policy has {', '.join(states)}")
    max_level = loaded.policy.trust.max_level
    if not 1 <= level <= max_level:
        raise TrustError(f"level {level} is out of range: 1 … {max_level} (the policy's trust.max_level)")
    state = states[segment]
    move = Move(segment, state.level, level, "pin", f"pinned by {by}")
    if not _set_level(session, state, level, pinned=True, reason=move.reason, now=now):
        raise TrustError(f"segment '{segment}' changed while pinning; run the command again")
    _record(session, loaded, move, now=now, actor=by)
    return move


def unpin(session: Session, loaded: LoadedPolicy, segment: str, *, now: datetime, by: str) -> Move:
    """Let a pinned segment move by agreement again, from its pinned level (audited)."""
    states = _states(session, loaded)
    state = states.get(segment)
    if state is None or not state.pinned:
        raise TrustError(f"segment '{segment}' is not pinned")
    move = Move(segment, state.level, state.level, "unpin", f"unpinned by {by}: moves by agreement again")
    if not _set_level(session, state, state.level, pinned=False, reason=move.reason, now=now):
        raise TrustError(f"segment '{segment}' changed while unpinning; run the command again")
    _record(session, loaded, move, now=now, actor=by)
    return move


@dataclass(frozen=True)
class SegmentStatus:
    """A segment's level and evidence, for ``loopgate trust status`` and the digest."""

    assessment: Assessment
    since: datetime | None
    stored: bool
    all_time: Agreement
    reviewers: dict[str, Agreement]


def trust_status(session: Session, loaded: LoadedPolicy) -> list[SegmentStatus]:
    """Each segment's level, agreement, verdict counts and what it takes to move.

    ``assessment`` counts only the verdicts that move the level (current level, current
    policy version, since the last change); ``all_time`` and ``reviewers`` count every
    verdict on the segment, per person.
    """
    states = _states(session, loaded)
    stored = set(session.execute(select(TrustState.segment)).scalars())
    found = verdicts(session)
    out = []
    for segment, state in states.items():
        mine = [v for v in found if v.segment == segment]
        result = assess(state, counting_verdicts(mine, state, loaded.version), loaded.policy.trust)
        by_reviewer = agreement_by(mine, lambda v: v.reviewer)
        out.append(
            SegmentStatus(
                assessment=result,
                since=state.since,
                stored=segment in stored,
                all_time=agreement(mine),
                reviewers=dict(sorted(by_reviewer.items())),
            )
        )
    return out


def status_rows(statuses: Sequence[SegmentStatus]) -> list[dict[str, Any]]:
    """Statuses as plain rows (for JSON output)."""
    return [
        {
            "segment": s.assessment.segment,
            "level": s.assessment.level if s.assessment.move is None else s.assessment.move.from_level,
            "pinned": s.assessment.pinned,
            "since": s.since.isoformat() if s.since else None,
            "counting_verdicts": s.assessment.verdicts,
            "agreement": s.assessment.agreement,
            "window_agreement": s.assessment.window_agreement,
            "all_verdicts": s.all_time.n,
            "all_agreement": s.all_time.rate,
            "reviewers": {k: {"n": a.n, "agreement": a.rate} for k, a in s.reviewers.items()},
            "due_move": None
            if s.assessment.move is None
            else {"to": s.assessment.move.to_level, "kind": s.assessment.move.kind},
            "outlook": s.assessment.outlook,
        }
        for s in statuses
    ]
