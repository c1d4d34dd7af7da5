"""The bot as ``loopgate serve`` composes it, on a real HTTP port, against the fake Slack.

The fake only grants the scopes ``manifest.yaml`` asks for, so a Web API call the manifest
does not cover fails the scenario that makes it. The outbox is drained explicitly
(``harness.drain()``) so each test decides when Slack effects happen; listeners' lazy work and
the clicks their acks stored are settled with ``harness.settle()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import select

from core.policy import LoadedPolicy
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision, OutboxRow, Review, SlackMessage
from core.store.outbox import DrainReport
from loopgate.runtime import Runtime, compose
from loopgate.sandbox.slack import FakeMessage, FakeSlack
from loopgate.settings import Settings
from tests.builders import LeadBuilder, decide, decide_examples
from tests.conftest import ROOT

MANIFEST = yaml.safe_load((ROOT / "manifest.yaml").read_text())
MANIFEST_SCOPES = MANIFEST["oauth_config"]["scopes"]["bot"]


class Clock:
    """A clock tests move by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def slack(example_policy: LoadedPolicy) -> Iterator[FakeSlack]:
    with FakeSlack(scopes=MANIFEST_SCOPES) as fake:
        fake.seed_from_policy(example_policy.policy)
        fake.add_user("U0STRANGER", "stranger", "Someone Else")
        for channel in fake.channels.values():
            channel.members.add("U0STRANGER")
        yield fake  # type: ignore[misc]


def settings_for(fake: FakeSlack, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": SecretStr(fake.bot_token),
        "slack_signing_secret": SecretStr(fake.signing_secret),
        "slack_app_token": None,
        "slack_api_url": fake.api_url,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Harness:
    runtime: Runtime
    slack: FakeSlack
    db: Database
    policy: LoadedPolicy
    clock: Clock

    def decide_examples(self, *ids: str) -> dict[str, int]:
        return decide_examples(self.db, self.policy, self.clock.at - timedelta(minutes=10), list(ids) or None)

    def decide(self, *leads: dict[str, Any]) -> dict[str, int]:
        return decide(self.db, self.policy, list(leads), self.clock.at - timedelta(minutes=10))

    def drain(self) -> DrainReport:
        return outbox.drain(self.db, [self.runtime.notifier], "test-worker", self.clock)

    def settle(self) -> None:
        """Wait for the listeners, then record the clicks their acks stored (what the outbox
        worker does in ``serve``)."""
        assert self.runtime.pool.wait_idle(10), "listeners still busy after 10 s"
        outbox.drain(self.db, [self.runtime.clicks], "test-worker", self.clock)

    def posted(self, decision_pk: int, target: str = "channel") -> FakeMessage:
        """The escalation message Slack holds for a decision (``channel`` or ``dm``)."""
        with self.db.sessions() as s:
            row = s.execute(
                select(SlackMessage).where(SlackMessage.key == f"escalation:{decision_pk}:{target}")
            ).scalar_one()
        return self.slack.message(row.channel, row.ts)

    def outbox_rows(self, kind: str) -> list[OutboxRow]:
        with self.db.sessions() as s:
            return list(s.execute(select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.pk)).scalars())

    def click(self, user: str, action_id: str, decision_pk: int, **kw: Any) -> Any:
        message = self.posted(decision_pk, kw.pop("target", "channel"))
        delivery = self.slack.click(
            user, action_id, channel=message.channel, ts=message.ts, value=str(decision_pk), **kw
        )
        self.settle()
        return delivery


@contextmanager
def serving(
    db: Database, policy: LoadedPolicy, slack: FakeSlack, now: datetime, **compose_options: Any
) -> Iterator[Harness]:
    """The bot composed as ``serve`` does (no outbox worker: tests drain), on a real port."""
    clock = Clock(now + timedelta(minutes=10))
    runtime = compose(settings_for(slack), db, policy, port=0, clock=clock, outbox=False, **compose_options)
    runtime.start()
    slack.request_url = f"{runtime.front.url}/slack/events"
    try:
        yield Harness(runtime, slack, db, policy, clock)
    finally:
        # every service serve would stop, the policy follower too: left polling, its thread
        # outlived the test and made garbage in whatever test ran next in this worker
        runtime.stop()


@pytest.fixture
def harness(db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime) -> Iterator[Harness]:
    with serving(db, example_policy, slack, now) as bot:
        yield bot


def escalate(harness: Harness, lead: LeadBuilder) -> tuple[int, str]:
    """A posted escalation: (decision pk, the proposed owner's Slack id)."""
    pk = harness.decide(lead.raw(harness.clock.at))[lead.id]
    harness.drain()
    with harness.db.sessions() as s:
        owner = s.get(Decision, pk).owner  # type: ignore[union-attr]
    slack_user = harness.runtime.context.rules.roster.reps[owner or ""].slack_user
    assert slack_user
    return pk, slack_user


def reviews(db: Database) -> list[Review]:
    with db.sessions() as s:
        return list(s.execute(select(Review)).scalars())
