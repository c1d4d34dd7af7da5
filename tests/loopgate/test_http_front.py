"""The bot's HTTP front refuses bodies Bolt cannot parse with 400, before any listener runs."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from core.policy import LoadedPolicy
from core.store.db import Database
from loopgate.runtime import compose
from loopgate.sandbox.slack import FakeSlack
from loopgate.sandbox.slack_payloads import signed_headers
from tests.bot.conftest import MANIFEST_SCOPES, settings_for


@pytest.mark.parametrize("body", ["payload=%7Bnot-json", "payload=null", "payload=%5B1%5D", "payload=%22x%22"])
def test_given_a_payload_that_is_not_a_json_object_when_posted_then_400_not_a_dropped_connection(
    db: Database, example_policy: LoadedPolicy, body: str
) -> None:
    with FakeSlack(scopes=MANIFEST_SCOPES) as fake:
        runtime = compose(settings_for(fake), db, example_policy, port=0, outbox=False)
        runtime.front.start()
        try:
            parts = urlsplit(runtime.front.url)
            for secret in (fake.signing_secret, "not-the-secret"):  # signed or not: Bolt parses first
                headers = signed_headers(secret, body, "application/x-www-form-urlencoded")
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
                try:
                    conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
                    assert conn.getresponse().status == 400
                finally:
                    conn.close()
        finally:
            runtime.front.stop()
            runtime.pool.shutdown()
