"""Publish, shadow, promote, roll back, withdraw: whole or not at all, audited, announced."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from core.errors import PolicyError
from core.policy import LoadedPolicy
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import Database
from core.store.models import AuditEvent, OutboxRow, PolicyRole, PolicyVersion
from core.store.policies import (
    LifecycleError,
    RoleChange,
    challenger,
    champion,
    history,
    promote,
    publish,
    resolve_version,
    rollback,
    withdraw,
)
from tests.store.learning_builders import variant, wait_for_a_lock_waiter


def _v2(example: LoadedPolicy) -> LoadedPolicy:
    return variant(example, "bands: {hot: 75, warm: 45}", "bands: {hot: 70, warm: 40}")


def _v3(example: LoadedPolicy) -> LoadedPolicy:
    return variant(example, "auto_confidence: 0.55", "auto_confidence: 0.6")


def _roles(db: Database) -> tuple[str | None, str | None]:
    with db.sessions() as s:
        return champion(s), challenger(s)


def test_given_a_valid_policy_when_published_then_champion_history_audit_and_slack_announcement(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        change = publish(s, example_policy, now=now, by="cli:rev", note="first")
    assert change is not None and (change.action, change.role, change.previous) == ("publish", "champion", None)
    assert _roles(db) == (example_policy.version, None)
    with db.sessions() as s:
        kinds = list(s.execute(select(AuditEvent.kind).order_by(AuditEvent.seq)).scalars())
        posts = s.execute(select(OutboxRow).where(OutboxRow.kind == "slack.message")).scalars().all()
        events = history(s)
    assert kinds == ["policy.stored", "policy.published"]
    assert [(e.action, e.version, e.by, e.note) for e in events] == [
        ("publish", example_policy.version, "cli:rev", "first")
    ]
    assert len(posts) == 1 and posts[0].payload["channel"] == "C0LEADERS"
    assert example_policy.version in posts[0].payload["text"]
    for block in Block.parse_all(posts[0].payload["blocks"]):
        block.validate_json()


def test_given_the_champion_when_published_again_then_nothing_changes(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
    with db.transaction() as s:
        assert publish(s, example_policy, now=now, by="t") is None
        with pytest.raises(LifecycleError, match="a challenger must differ"):
            publish(s, example_policy, now=now, by="t", shadow=True)
        assert len(history(s)) == 1


def test_given_a_challenger_when_promoted_and_rolled_back_then_roles_follow_and_history_tells_it(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    v1, v2, v3 = example_policy, _v2(example_policy), _v3(example_policy)
    with db.transaction() as s:
        publish(s, v1, now=now, by="t")
        publish(s, v2, now=now + timedelta(minutes=1), by="t", shadow=True)
    assert _roles(db) == (v1.version, v2.version)
    with db.transaction() as s:
        promote(s, now=now + timedelta(minutes=2), by="t")
    assert _roles(db) == (v2.version, None)
    with db.transaction() as s:
        publish(s, v3, now=now + timedelta(minutes=3), by="t")
    with db.transaction() as s:
        back = rollback(s, now=now + timedelta(minutes=4), by="t")  # to what v3 replaced
    assert back.version == v2.version and _roles(db) == (v2.version, None)
    with db.transaction() as s:
        rollback(s, v1.version[:6], now=now + timedelta(minutes=5), by="t")
    assert _roles(db) == (v1.version, None)
    with db.sessions() as s:
        actions = [(e.action, e.version, e.previous) for e in history(s)]
    assert actions == [
        ("publish", v1.version, None),
        ("shadow", v2.version, None),
        ("promote", v2.version, v1.version),
        ("publish", v3.version, v2.version),
        ("rollback", v2.version, v3.version),
        ("rollback", v1.version, v2.version),
    ]


def test_given_two_promotes_at_once_on_postgresql_when_the_first_commits_then_the_second_finds_nothing_to_promote(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite runs one write transaction at a time: two promotes cannot overlap")
    v1, v2 = example_policy, _v2(example_policy)
    with db.transaction() as s:
        publish(s, v1, now=now, by="t")
        publish(s, v2, now=now + timedelta(minutes=1), by="t", shadow=True)
    second: list[object] = []

    def promote_too() -> None:
        try:
            with db.transaction() as s:
                second.append(promote(s, now=now + timedelta(minutes=2), by="b"))
        except LifecycleError as exc:
            second.append(exc)

    with db.transaction() as s:
        promote(s, now=now + timedelta(minutes=2), by="a")
        other = threading.Thread(target=promote_too)
        other.start()
        wait_for_a_lock_waiter(db)  # the second promote has read what it could and waits
    other.join()

    assert len(second) == 1 and isinstance(second[0], LifecycleError), second
    assert "no challenger to promote" in str(second[0])
    with db.sessions() as s:
        promotions = [(e.version, e.previous, e.by) for e in history(s) if e.action == "promote"]
    assert promotions == [(v2.version, v1.version, "a")]
    assert _roles(db) == (v2.version, None)


def test_given_a_batch_holding_the_champion_on_postgresql_when_a_new_version_is_published_then_it_waits_its_turn(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite runs one write transaction at a time: a publish cannot start beside a batch")
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
    published: list[object] = []

    def publish_new() -> None:
        try:
            with db.transaction() as s:
                published.append(publish(s, _v2(example_policy), now=now, by="b"))
        except Exception as exc:  # a deadlock would surface here or in the batch
            published.append(exc)

    with db.transaction() as s:  # a batch deciding for the champion has read it; its audit events come next
        s.execute(select(PolicyRole.version).where(PolicyRole.role == "champion").with_for_update(read=True))
        other = threading.Thread(target=publish_new)
        other.start()
        wait_for_a_lock_waiter(db)
        audit_log.append(s, [AuditRecord(now, "loopgate", "decision.made", "lead:salesforce:1")])
    other.join()

    assert len(published) == 1 and isinstance(published[0], RoleChange), published
    assert _roles(db) == (_v2(example_policy).version, None)


def test_given_three_champions_when_rolled_back_twice_then_each_rollback_steps_further_back(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    a, b, c = example_policy, _v2(example_policy), _v3(example_policy)
    for i, loaded in enumerate((a, b, c)):
        with db.transaction() as s:
            publish(s, loaded, now=now + timedelta(minutes=i), by="t")

    restored = []
    for i in (1, 2):
        with db.transaction() as s:
            restored.append(rollback(s, now=now + timedelta(hours=i), by="t").version)

    assert restored == [b.version, a.version]
    with db.transaction() as s, pytest.raises(LifecycleError, match="first champion"):
        rollback(s, now=now + timedelta(hours=3), by="t")
    with db.transaction() as s:  # naming a version still restores it; a plain rollback then undoes that
        rollback(s, c.version, now=now + timedelta(hours=4), by="t")
    with db.transaction() as s:
        assert rollback(s, now=now + timedelta(hours=5), by="t").version == a.version


def test_given_a_challenger_when_withdrawn_then_shadowing_stops(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
        publish(s, _v2(example_policy), now=now, by="t", shadow=True)
    with db.transaction() as s:
        withdraw(s, now=now, by="t")
    assert _roles(db) == (example_policy.version, None)
    with db.transaction() as s, pytest.raises(LifecycleError, match="no challenger"):
        withdraw(s, now=now, by="t")


def test_given_a_stored_challenger_that_no_longer_validates_when_promoted_then_refused_and_nothing_changes(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
        s.add(
            PolicyVersion(version="bad00000", name="x", source="x", text="reps: []\n", created_at=now, created_by="t")
        )
        s.flush()
        s.add(PolicyRole(role="challenger", version="bad00000", since=now, by="t"))
    with pytest.raises(PolicyError), db.transaction() as s:
        promote(s, now=now, by="t")
    assert _roles(db) == (example_policy.version, "bad00000")
    with db.transaction() as s:  # withdrawing a broken challenger must still work
        withdraw(s, now=now, by="t")
    assert _roles(db) == (example_policy.version, None)


def test_given_nothing_to_act_on_when_asked_then_clear_errors(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        with pytest.raises(LifecycleError, match="no challenger to promote"):
            promote(s, now=now, by="t")
        with pytest.raises(LifecycleError, match="no champion"):
            rollback(s, now=now, by="t")
        publish(s, example_policy, now=now, by="t")
        with pytest.raises(LifecycleError, match="first champion"):
            rollback(s, now=now, by="t")
        with pytest.raises(LifecycleError, match="already the champion"):
            rollback(s, example_policy.version, now=now, by="t")


def test_given_stored_versions_when_resolved_then_by_prefix_role_or_a_clear_error(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
    with db.sessions() as s:
        assert resolve_version(s, example_policy.version[:4]) == example_policy.version
        assert resolve_version(s, "champion") == example_policy.version
        with pytest.raises(LifecycleError, match="too short"):
            resolve_version(s, "ab")
        with pytest.raises(LifecycleError, match="no stored policy version"):
            resolve_version(s, "ffffffff")
        with pytest.raises(LifecycleError, match="no challenger is published"):
            resolve_version(s, "challenger")
