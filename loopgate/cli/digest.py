"""``loopgate digest``: the weekly audit digest on demand — print it, write it as HTML, or post it.

``--post`` does what the Monday job does (claim the week, queue the summary, the chart and the
audit sample) and, when Slack is configured, delivers those three at once — only those: the
escalations, nudges and focus lists waiting in the outbox are ``loopgate serve``'s to send, paced
and in order, not a side effect of posting a report. A week already posted is not posted again.
The numbers are the same in every form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.app import web_client
from bot.notifier import SlackNotifier
from bot.uploads import SlackFileUploader
from core.digest import last_complete_week, week_bounds, week_label
from core.review import ReviewRules
from core.sla import PolicySlaClock
from core.store import outbox
from core.store.digest import weekly_digest
from core.store.outbox import EffectHandler
from loopgate.cli.console import err, out
from loopgate.cli.governance_options import NowOption, as_of
from loopgate.outbox_worker import worker_id
from loopgate.settings import ConfigError, load_settings
from loopgate.wiring import active_policy, open_database
from scheduler.context import utcnow
from scheduler.digest import digest_html, digest_text, queue_digest, render_digest

__all__ = ["register"]


def digest(
    week: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W47 (default: the last complete week in the digest's zone).")
    ] = None,
    post: Annotated[
        bool, typer.Option("--post", help="Post it to the policy's digest channel (once per week).")
    ] = False,
    print_: Annotated[bool, typer.Option("--print", help="Print the figures (the default).")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write a standalone HTML report with the chart.")] = None,
    now: NowOption = None,
) -> None:
    """The weekly audit digest: speed and SLAs, overrides and why, agreement and trust, conversion,
    drift, fairness, and the audit sample."""
    if sum((post, print_, html is not None)) > 1:
        raise typer.BadParameter("choose one of --post, --print or --html")
    settings = load_settings()
    db = open_database(settings)
    loaded = active_policy(db, settings)
    config = loaded.policy.digest
    zone = config.timezone if config else "UTC"
    at = as_of(now)
    label = week or last_complete_week(at, zone)
    try:
        start, end = week_bounds(label, zone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--week") from None
    # the label keys the week's record and its posts: 2026-w10 or 2026-W010 must be 2026-W10,
    # or one week is posted once per spelling
    label = week_label(start.astimezone(ZoneInfo(zone)).date())
    if post and end > at:
        # a week is posted once: posting it half-way would keep the complete week from ever
        # reaching the leaders. Printing it is fine.
        raise typer.BadParameter(
            f"{label} is not over until {end.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}; "
            "a week is posted once, when complete (--print shows it so far)",
            param_hint="--week",
        )
    if post and config is None:
        raise ConfigError("the policy has no digest section (digest.channel): nowhere to post")
    with db.transaction() as session:
        d = weekly_digest(session, loaded, week=label, now=at, timezone=zone)
        queued = False
        if post and config is not None:
            queued = queue_digest(session, loaded, d, render_digest(d, loaded), channel=config.channel)
    if html is not None:
        try:
            html.write_text(digest_html(d, render_digest(d, loaded).chart), encoding="utf-8")
        except OSError as exc:  # a folder that is not there, no permission: one line, not a traceback
            raise typer.BadParameter(f"cannot write {html}: {exc.strerror or exc}", param_hint="--html") from None
        err.print(f"wrote {html}")
        return
    if not post:
        out.print(digest_text(d), end="")
        return
    if not queued:
        err.print(f"the digest for {label} was posted before; nothing queued")
        return
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        err.print(f"digest {label} queued for {config.channel if config else '?'}; `loopgate serve` posts it")
        return
    client = web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url, retries=False)
    handlers: list[EffectHandler] = [
        SlackNotifier(db, ReviewRules(loaded.policy), client, review_clock=PolicySlaClock(loaded.policy), clock=utcnow),
        SlackFileUploader(db, client, clock=utcnow),
    ]
    # rows queued "as of" --now are due then: deliver them now even if --now is ahead of the clock
    report = outbox.drain(
        db, handlers, worker_id(), lambda: max(utcnow(), at), max_batches=50, key_prefix=f"digest:{label}:"
    )
    err.print(
        f"digest {label} posted ({report.done} Slack posts done, {report.retried} to retry, {report.dead} failed)"
    )


def register(app: typer.Typer) -> None:
    app.command("digest")(digest)
