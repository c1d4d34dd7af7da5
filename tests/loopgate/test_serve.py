"""``loopgate serve`` as an operator runs it: a subprocess, real HTTP, the fake Slack behind it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import ids
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision
from loopgate.runtime import compose
from loopgate.sandbox.slack import FakeSlack
from tests.bot.conftest import MANIFEST_SCOPES, settings_for
from tests.builders import LeadBuilder, decide
from tests.conftest import EXAMPLE_POLICY, ROOT
from tests.loopgate.cli_runner import run_cli


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def finish(self, timeout: float = 20) -> int:
        """SIGTERM, then the exit code once the process and its stderr are done."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # serve dumps its threads' stacks before this
            self.proc.kill()
            self.proc.wait()
            if self.reader is not None:
                self.reader.join(5)
            pytest.fail(f"serve did not stop within {timeout} s of SIGTERM:\n{self.log}")
        if self.reader is not None:
            self.reader.join(timeout)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)


def _env(fake: FakeSlack, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))}
    env.update(
        {
            "LOOPGATE_DATABASE_URL": db_url,
            "LOOPGATE_POLICY": str(EXAMPLE_POLICY),
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_SIGNING_SECRET": fake.signing_secret,
            "SLACK_API_URL": fake.api_url,
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def fake(example_policy: LoadedPolicy) -> Iterator[FakeSlack]:
    with FakeSlack(scopes=MANIFEST_SCOPES) as slack:
        slack.seed_from_policy(example_policy.policy)
        yield slack  # type: ignore[misc]


def _serve(env: dict[str, str], marker: str = "/slack/events") -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopgate", "serve", "--port", "0", "--poll", "0.1"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    served = Served(proc)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            served.lines.append(line)
            if "loopgate serving" in line and marker in line:
                served.url = line.split("(health ", 1)[1].split("/healthz")[0]
                ready.set()
        ready.set()

    served.reader = threading.Thread(target=pump, daemon=True)
    served.reader.start()
    assert ready.wait(30), "serve did not start"
    assert served.url, served.log
    return served


def _get(url: str) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local test server
        return response.status, json.loads(response.read())


def test_given_serve_when_running_then_it_posts_escalations_takes_clicks_and_stops_cleanly_on_sigterm(
    fake: FakeSlack, db_url: str, example_policy: LoadedPolicy
) -> None:
    served = _serve(_env(fake, db_url, LOOPGATE_LOG_LEVEL="DEBUG"))
    try:
        assert _get(f"{served.url}/healthz") == (
            200,
            {"status": "ok", "database": "ok", "clicks_worker": "running", "outbox_worker": "running"},
        )
        fake.request_url = f"{served.url}/slack/events"
        db = Database(db_url)
        now = datetime.now(UTC)
        pk = decide(db, example_policy, [LeadBuilder("00Q5e00000V0001").raw(now)], now)["00Q5e00000V0001"]
        message = fake.wait_until(lambda: fake.messages("C0MMREVIEW"), timeout=10)[0]  # the worker posted it
        assert fake.click("U01LEE", ids.APPROVE, channel=message.channel, ts=message.ts).status == 200
        fake.wait_until(lambda: fake.messages("C0MMREVIEW")[0].edits, timeout=10)  # and updated it
        with db.sessions() as s:
            assert s.get(Decision, pk).state == "reviewed"  # type: ignore[union-attr]
        db.dispose()
    finally:
        code = served.finish()
    assert code == 0
    assert "stopped" in served.log
    assert "DEBUG" in served.log  # it did log at debug level…
    for secret in (fake.bot_token, fake.signing_secret):
        assert secret not in served.log  # …and never a secret


def test_given_an_app_token_when_serving_then_socket_mode_carries_clicks_commands_and_events(
    fake: FakeSlack, db_url: str, example_policy: LoadedPolicy
) -> None:
    env = _env(fake, db_url, SLACK_APP_TOKEN=fake.app_token)
    del env["SLACK_SIGNING_SECRET"]  # not needed: the socket is authenticated by the app token
    served = _serve(env, marker="Socket Mode")
    try:
        fake.transport = "socket"
        assert fake.socket is not None and fake.socket.wait_connected(10)
        db = Database(db_url)
        now = datetime.now(UTC)
        pk = decide(db, example_policy, [LeadBuilder("00Q5e00000V0002").raw(now)], now)["00Q5e00000V0002"]
        message = fake.wait_until(lambda: fake.messages("C0MMREVIEW"), timeout=10)[0]
        ack = fake.click("U01LEE", ids.APPROVE, channel=message.channel, ts=message.ts)
        assert ack.status == 200 and ack.elapsed < 3
        fake.wait_until(lambda: fake.messages("C0MMREVIEW")[0].edits, timeout=10)
        with db.sessions() as s:
            assert s.get(Decision, pk).state == "reviewed"  # type: ignore[union-attr]
        db.dispose()
        reply = fake.command("U01LEE", "help")
        assert "/loopgate queue" in reply.body  # the ack payload travels back over the socket
        fake.open_home("U01LEE")
        fake.wait_until(lambda: fake.home("U01LEE"), timeout=10)
    finally:
        code = served.finish()
    assert code == 0, served.log


def test_given_no_slack_settings_when_serving_then_one_line_names_the_variable(db_url: str) -> None:
    result = run_cli(
        "serve", "--port", "0", env={"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE_POLICY)}
    )
    assert result.code == 2
    assert result.err.strip() == "error: SLACK_BOT_TOKEN is not set (xoxb-…)"


def test_given_a_token_slack_rejects_or_no_slack_when_serving_then_one_line_and_exit_2(
    fake: FakeSlack, db_url: str
) -> None:
    for env, expected in (
        (_env(fake, db_url, SLACK_BOT_TOKEN="xoxb-revoked"), "error: Slack refused SLACK_BOT_TOKEN at "),
        (_env(fake, db_url, SLACK_API_URL="http://127.0.0.1:9/api/"), "error: cannot reach Slack at SLACK_API_URL="),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "loopgate", "serve", "--port", "0"], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith(expected) and "Traceback" not in result.stderr
        assert "xoxb-revoked" not in result.stderr


def test_given_a_port_in_use_or_out_of_range_when_serving_then_one_line_and_exit_2(
    fake: FakeSlack, db_url: str
) -> None:
    def serve_on(port: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loopgate", "serve", "--no-scheduler"], env=_env(fake, db_url, LOOPGATE_PORT=port),
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        in_use = serve_on(str(busy))  # (a host that is not this machine's goes the same way)
    out_of_range = serve_on("70000")

    assert in_use.returncode == 2 and "Traceback" not in in_use.stderr, in_use.stderr
    last = in_use.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot listen on 127.0.0.1:{busy} (") and "--port/LOOPGATE_PORT" in last
    assert out_of_range.returncode == 2 and "Traceback" not in out_of_range.stderr
    assert "Invalid value for '--port'" in out_of_range.stderr


def test_given_an_empty_signing_secret_in_http_mode_when_serving_then_refused(fake: FakeSlack, db_url: str) -> None:
    env = _env(fake, db_url, SLACK_SIGNING_SECRET="")
    result = subprocess.run(
        [sys.executable, "-m", "loopgate", "serve", "--port", "0"], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    # an empty value is no value (env_ignore_empty): refused as not set, before serving anything
    assert result.returncode == 2 and "SLACK_SIGNING_SECRET is not set" in result.stderr


def test_given_an_app_token_when_composed_then_socket_mode_and_http_serves_health_only(
    fake: FakeSlack, db: Database, example_policy: LoadedPolicy
) -> None:
    from pydantic import SecretStr

    settings = settings_for(fake, slack_app_token=SecretStr("xapp-1-A0LOOPGATE-sandbox"), slack_signing_secret=None)
    runtime = compose(settings, db, example_policy, port=0, outbox=False)
    assert runtime.mode == "socket" and [s.name for s in runtime.services][-2:] == ["socket-mode", "http"]
    runtime.front.start()
    try:
        assert _get(f"{runtime.front.url}/healthz")[0] == 200
        request = urllib.request.Request(f"{runtime.front.url}/slack/events", data=b"{}", method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310
        caught.value.close()
        assert caught.value.code == 404
    finally:
        runtime.front.stop()
        runtime.pool.shutdown()


def test_given_a_database_that_goes_away_when_health_is_checked_then_503(
    fake: FakeSlack, tmp_path: Any, example_policy: LoadedPolicy
) -> None:
    db = Database(f"sqlite:///{tmp_path}/missing/dir/x.db")  # cannot be opened
    runtime = compose(settings_for(fake), db, example_policy, port=0, outbox=False)
    runtime.front.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{runtime.front.url}/healthz", timeout=5)  # noqa: S310
        assert caught.value.code == 503
        assert json.loads(caught.value.read())["status"] == "unavailable"
        caught.value.close()
    finally:
        runtime.front.stop()
        runtime.pool.shutdown()
        db.dispose()
