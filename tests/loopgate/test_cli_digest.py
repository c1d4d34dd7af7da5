"""``loopgate digest`` as a RevOps lead uses it: print the week, write HTML, post it once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import OutboxRow
from loopgate.sandbox.slack import FakeSlack
from tests.bot.conftest import MANIFEST_SCOPES
from tests.builders import decide_examples
from tests.conftest import EXAMPLE_POLICY
from tests.loopgate.inprocess import InProcessCli

MONDAY = "2026-11-23T13:05:00Z"


@pytest.fixture
def cli(
    db: Database,
    db_url: str,
    example_policy: LoadedPolicy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> InProcessCli:

    decide_examples(db, example_policy, datetime(2026, 11, 20, 20, tzinfo=UTC))
    return InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE_POLICY)})


def test_given_a_stored_week_when_printed_then_the_figures_are_there_and_html_embeds_the_chart(
    cli: InProcessCli, tmp_path: Path
) -> None:
    printed = cli("digest", "--now", MONDAY)
    assert printed.code == 0, printed.err
    assert printed.out.startswith("Weekly audit 2026-W47")
    assert "decisions            24" in printed.out and "score drift (PSI)" in printed.out

    page = tmp_path / "digest.html"
    written = cli("digest", "--week", "2026-W47", "--html", str(page), "--now", MONDAY)
    assert written.code == 0 and "data:image/png;base64," in page.read_text()
    html = page.read_text()
    assert "O&#x27;Brien" in html and "<script" not in html  # CRM text is escaped in the page

    bad = cli("digest", "--week", "2026-47")
    assert bad.code == 2 and "ISO week" in bad.err


def test_given_slack_is_configured_when_posting_twice_then_the_week_is_posted_once_and_nothing_else(
    cli: InProcessCli, db: Database, monkeypatch: pytest.MonkeyPatch, example_policy: LoadedPolicy
) -> None:
    with db.sessions() as s:
        waiting = s.execute(select(OutboxRow.dedupe_key).where(OutboxRow.kind == "slack.escalation")).scalars().all()
    assert waiting  # the stored week left escalations for `loopgate serve` to post
    with FakeSlack(scopes=MANIFEST_SCOPES) as slack:
        slack.seed_from_policy(example_policy.policy)
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.bot_token)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        first = cli("digest", "--post", "--now", MONDAY)
        second = cli("digest", "--post", "--now", MONDAY)
        leaders = slack.messages("C0LEADERS")

    assert first.code == 0 and "digest 2026-W47 posted (3 Slack posts done" in first.err, first.err
    assert second.code == 0 and "was posted before" in second.err
    assert len([m for m in leaders if m.files]) == 1 and len([m for m in leaders if not m.files]) == 2
    with db.sessions() as s:
        keys = s.execute(select(OutboxRow.dedupe_key).where(OutboxRow.dedupe_key.like("digest:%"))).scalars().all()
        # posting the report posted nothing else: the escalations still wait for serve
        states = s.execute(select(OutboxRow.status).where(OutboxRow.dedupe_key.in_(waiting))).scalars().all()
    assert sorted(keys) == ["digest:2026-W47:chart", "digest:2026-W47:sample", "digest:2026-W47:summary"]
    assert states == ["pending"] * len(waiting)


def test_given_a_week_spelled_otherwise_when_posted_then_it_is_the_same_week_and_posted_once(
    cli: InProcessCli, db: Database
) -> None:
    said = [cli("digest", "--post", "--week", w, "--now", MONDAY).err for w in ("2026-W47", "2026-w47", "2026-W047")]
    assert "digest 2026-W47 queued" in said[0]  # no Slack token: queued for serve
    assert all("the digest for 2026-W47 was posted before" in e for e in said[1:]), said
    with db.sessions() as s:
        keys = s.execute(select(OutboxRow.dedupe_key).where(OutboxRow.dedupe_key.like("digest:%"))).scalars().all()
    assert sorted(keys) == ["digest:2026-W47:chart", "digest:2026-W47:sample", "digest:2026-W47:summary"]


def test_given_an_html_path_in_a_missing_folder_when_written_then_a_usage_error_not_a_traceback(
    cli: InProcessCli, tmp_path: Path
) -> None:
    written = cli("digest", "--week", "2026-W47", "--html", str(tmp_path / "no" / "digest.html"), "--now", MONDAY)
    assert written.code == 2, written.err
    assert "Invalid value for --html: cannot write " in written.err and "No such file or directory" in written.err


def test_given_the_week_is_not_over_when_posted_then_refused_and_the_complete_week_can_still_be_posted(
    cli: InProcessCli, db: Database
) -> None:
    early = cli("digest", "--post", "--week", "2026-W48", "--now", MONDAY)
    assert early.code == 2 and "2026-W48 is not over until 2026-11-30 00:00" in early.err, early.err
    assert cli("digest", "--print", "--week", "2026-W48", "--now", MONDAY).code == 0  # so far: fine to read
    with db.sessions() as s:
        assert not s.execute(select(OutboxRow.pk).where(OutboxRow.dedupe_key.like("digest:%"))).all()

    later = cli("digest", "--post", "--week", "2026-W48", "--now", "2026-11-30T09:00:00Z")
    assert later.code == 0 and "digest 2026-W48 queued" in later.err, later.err
