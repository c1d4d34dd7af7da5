"""Hostile and broken input: CRM records of any shape through the HubSpot mapping, the engine
and the Slack renderers; malformed Slack requests; a broken policy file; a CRM answering with
malformed JSON. No crash, every payload valid, nobody pinged by CRM text, nothing changed by a
request that fails, the cursor never past what was stored."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from sqlalchemy import func, select

from bot.blocks.escalation import escalation_message
from bot.cards import load_card
from bot.sla import PolicyReviewClock
from connectors.errors import ConnectorError
from connectors.hubspot.records import lead_record
from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.review import ReviewRules
from core.store.db import Database
from core.store.models import Lead, SyncCursor
from loopgate.sandbox.http import FakeRequest, FakeResponse
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.slack_limits import notifications
from tests.builders import decide
from tests.conftest import EXAMPLE_POLICY
from tests.connectors.builders import hs_contact, hubspot_connector, seed_hubspot_people
from tests.loopgate.cli_runner import run_cli

MENTIONS = ["<!channel>", "<!here>", "<!everyone>", "<@U0EVIL>", "<#C0EVIL>", "<!subteam^S0EVIL>", "@channel",
            "<https://evil.example|click>", "*bold* _it_ ~s~ `c` > quote", "<script>alert(1)</script>",
            "'; DROP TABLE leads; --", "&amp; &lt; &gt;", "\u202e\u0000\ufeff", "🦄" * 3]  # fmt: skip
hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(MENTIONS) | st.text(max_size=8), max_size=6).map("".join),
    st.integers(min_value=1, max_value=9).map(lambda n: "<!channel>" * n * 100),  # up to 9 kB
)
any_value = st.one_of(
    st.none(), hostile_text, st.integers(), st.floats(allow_nan=True), st.booleans(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
FIELDS = ["email", "firstname", "lastname", "jobtitle", "company", "website", "industry", "numemployees",
          "annualrevenue", "country", "state", "hubspot_owner_id", "createdate", "lastmodifieddate",
          "hs_analytics_source", "lifecyclestage", "hs_email_last_click_date", "hs_lead_status"]  # fmt: skip
_ids = itertools.count(1)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(props=st.dictionaries(st.sampled_from(FIELDS), any_value), regulated=st.booleans())
def test_given_any_crm_record_when_synced_decided_and_rendered_then_valid_payloads_and_nobody_pinged(
    db: Database, example_policy: LoadedPolicy, now: datetime, props: dict[str, Any], regulated: bool
) -> None:
    if regulated:
        props = {**props, "industry": "banking"}  # reaches a person: the escalation with buttons
    record = lead_record(f"h{next(_ids)}", props, ["loopgate_score"])
    pk = decide(db, example_policy, [record.raw], now, accounts=False)[record.raw["id"]]
    rules = ReviewRules(example_policy.policy)
    with db.sessions() as s:
        card = load_card(s, rules, PolicyReviewClock(example_policy.policy), pk)
    assert card is not None
    people = {r.slack_user for r in example_policy.policy.reps}
    for audience in ("channel", "owner", "lookup"):
        message = escalation_message(card, audience=audience)
        for block in message.blocks:
            Block.parse(block).validate_json()  # type: ignore[union-attr]  # slack_sdk's model of every block
        pinged = notifications(message.text, message.blocks, parse=None, link_names=None)
        assert pinged.broadcasts == set(), (audience, pinged)
        assert pinged.users <= people, (audience, pinged)  # only the policy's own people, never CRM text


def test_given_malformed_or_unsigned_or_stale_slack_requests_when_posted_then_4xx_and_nothing_changes(
    db_url: str,
) -> None:
    from bot import ids
    from tests.reliability.harness import World, _reviews_of

    with World(db_url, seed=1, crm=None) as world:
        from tests.reliability.harness import _decide_reviews

        _decide_reviews(world, 1)
        proc = world.serve("--no-scheduler")
        url = f"{proc.url}/slack/events"
        [(pk, channel, ts, user)] = world.until(lambda: world.approvable(1), 30, "the escalation")
        slack = world.slack
        form = "application/x-www-form-urlencoded"
        statuses = [
            slack.deliver("payload=%7Bnot-json", form, url=url).status,  # signed, but not a payload
            slack.deliver("", form, url=url).status,  # signed, empty
            slack.deliver("payload=%7B%7D", form, url=url, secret="not-the-secret").status,  # unsigned
            slack.deliver("payload=%7B%7D", form, url=url, timestamp=int(time.time()) - 301).status,  # replayed
        ]
        real = slack.deliver  # a real click, signed 6 minutes ago (a replay)
        slack.deliver = lambda body, ct, **kw: real(body, ct, **{**kw, "timestamp": int(time.time()) - 360})  # type: ignore[method-assign]
        statuses.append(slack.click(user, ids.APPROVE, channel=channel, ts=ts, url=url).status)
        slack.deliver = real  # type: ignore[method-assign]
        time.sleep(0.5)
        assert _reviews_of(world, pk) == 0
        assert all(400 <= s < 500 for s in statuses), statuses
        # someone who is neither the owner, the manager nor an admin is refused, and nothing changes
        stranger = "U01DANA"  # a rep of another team: neither the proposed owner, its manager nor an admin
        assert slack.click(stranger, ids.APPROVE, channel=channel, ts=ts, url=url).status == 200
        refusal = world.until(lambda: slack.ephemerals_for(stranger), 10, "the refusal")
        assert "can't act" in refusal[0].text and "Nothing was changed" in refusal[0].text
        time.sleep(0.3)
        assert _reviews_of(world, pk) == 0
        assert proc.stop() == 0
        assert "Traceback" not in proc.log


def test_given_a_policy_file_that_fails_validation_when_published_then_the_active_policy_stays(
    db_url: str, tmp_path: Path
) -> None:
    env = {"LOOPGATE_DATABASE_URL": db_url}
    assert run_cli("policy", "publish", str(EXAMPLE_POLICY), env=env).code == 0
    before = run_cli("policy", "history", env=env).out
    broken = tmp_path / "policy.yaml"
    broken.write_text(EXAMPLE_POLICY.read_text().replace("weight: 2", "weight: -2", 1))
    result = run_cli("policy", "publish", str(broken), env=env)
    assert result.code != 0 and "weight" in (result.err + result.out)
    truncated = tmp_path / "truncated.yaml"
    truncated.write_text(EXAMPLE_POLICY.read_text()[:2000])
    assert run_cli("policy", "publish", str(truncated), env=env).code != 0
    assert run_cli("policy", "history", env=env).out == before


@pytest.mark.parametrize("bad_page", [1, 2])
def test_given_a_crm_answering_malformed_json_when_syncing_then_a_clear_error_and_the_cursor_not_past_the_data(
    db: Database, example_policy: LoadedPolicy, bad_page: int
) -> None:
    with FakeHubSpot() as hubspot:
        seed_hubspot_people(hubspot, example_policy)
        for _ in range(5):
            hubspot.create("contacts", hs_contact())
        connector = hubspot_connector(hubspot, example_policy, page_size=2)
        engine = DecisionEngine(example_policy)

        served = {"contacts": 0}
        broken = True

        def search(req: FakeRequest) -> FakeResponse:
            if req.match["type"] == "contacts":
                served["contacts"] += 1
                if broken and served["contacts"] >= bad_page:  # this page on, the body is cut off mid-JSON
                    return FakeResponse(200, b'{"total": 5, "results": [{"id": "10',
                                        {"Content-Type": "application/json;charset=utf-8"})  # fmt: skip
            return hubspot._search(req)

        hubspot._routes = [(m, p, search if n.endswith("/search/?$") else fn, n) for m, p, fn, n in hubspot._routes]
        with pytest.raises(ConnectorError) as caught:
            sync_crm(db, connector, engine, clock=lambda: datetime.now().astimezone())
        assert "malformed response" in str(caught.value) and "search contacts" in str(caught.value)
        with db.sessions() as s:
            cursors = list(s.execute(select(SyncCursor)).scalars())
            stored = s.execute(select(func.count()).select_from(Lead)).scalar_one()
        contact_cursor = [c for c in cursors if "contact" in c.stream]
        if bad_page == 1:
            assert stored == 0 and all(c.cursor_ts is None for c in contact_cursor)
        else:
            assert stored == 2  # the first page, with its cursor, in one transaction
        broken = False
        sync_crm(
            db, connector, engine, clock=lambda: datetime.now().astimezone()
        )  # the fault passes: everything arrives
        with db.sessions() as s:
            assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 5
