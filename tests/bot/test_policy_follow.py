"""A policy promoted or rolled back while ``serve`` runs reaches the bot without a restart."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select, update

from bot import ids
from core.errors import PolicyError
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import PolicyRole, PolicyVersion, Review
from core.store.policies import publish, rollback
from loopgate.policy_follower import PolicyFollower
from loopgate.sandbox.slack import FakeSlack
from tests.bot.conftest import Harness
from tests.bot.conftest import serving as bot_serving
from tests.builders import LeadBuilder, decide
from tests.store.learning_builders import variant

DANA = "  - {id: dana, name: Dana Weiss, slack_user: U01DANA, email: dana@acme.test, team: ent, weight: 1,"
DANA_ADMIN = "  - {id: dana, name: Dana Weiss, slack_user: U01DANA, email: dana@acme.test, team: ent, weight: 1,\n" \
    "     roles: [rep, admin],"  # fmt: skip


@pytest.fixture
def serving(db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime) -> Iterator[Harness]:
    """The bot harness of tests/bot, composed to follow the champion (polled by hand below)."""
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="admin")
    with bot_serving(db, example_policy, slack, now, follow_champion=3600) as bot:
        yield bot


def _follower(harness: Harness) -> PolicyFollower:
    [follower] = [s for s in harness.runtime.services if isinstance(s, PolicyFollower)]
    return follower


def _approve(harness: Harness, user: str, pk: int) -> list[Review]:
    """``user`` presses Approve on the decision's escalation (posted first if it is not yet)."""
    harness.drain()
    harness.click(user, ids.APPROVE, pk)
    with harness.db.sessions() as s:
        return list(s.execute(select(Review).where(Review.decision_pk == pk)).scalars())


def test_given_serve_running_when_a_policy_making_dana_an_admin_is_published_then_her_click_counts_and_rollback_undoes_it(
    serving: Harness, db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    follower = _follower(serving)
    pks = decide(db, example_policy, [LeadBuilder(f"00Q5e00000F000{i}").raw(now) for i in (1, 2)], now)
    first, second = pks.values()
    assert _approve(serving, "U01DANA", first) == []  # an enterprise rep: not hers to decide
    assert follower.check() is None  # nothing new published

    dana_admin = variant(example_policy, DANA, DANA_ADMIN)
    with db.transaction() as s:
        publish(s, dana_admin, now=now, by="admin")
    assert follower.check() is not None
    assert serving.runtime.context.policy.version == dana_admin.version
    assert serving.runtime.notifier.rules is serving.runtime.context.rules
    [review] = _approve(serving, "U01DANA", first)
    assert review.reviewer == "U01DANA"

    with db.transaction() as s:
        rollback(s, now=now, by="admin")
    assert follower.check() is not None
    assert serving.runtime.context.policy.version == example_policy.version
    assert _approve(serving, "U01DANA", second) == []


def test_given_a_champion_that_no_longer_validates_when_polled_then_serve_keeps_its_policy_and_says_why(
    serving: Harness, db: Database, example_policy: LoadedPolicy, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    # a stored version edited behind loopgate's back (or stored under older schema defaults)
    with db.transaction() as s:
        s.add(PolicyVersion(version="0badc0de", name="broken", source="x.yaml", text="reps: nope\n",
                            created_at=now, created_by="someone"))  # fmt: skip
        s.flush()
        s.execute(update(PolicyRole).where(PolicyRole.role == "champion").values(version="0badc0de"))
    follower = _follower(serving)
    with pytest.raises(PolicyError), caplog.at_level(logging.ERROR):
        follower.check()
    assert serving.runtime.context.policy.version == example_policy.version
    follower.poll()
    assert "reading the published policy failed; keeping" in caplog.text
    assert serving.runtime.context.policy.version == example_policy.version
