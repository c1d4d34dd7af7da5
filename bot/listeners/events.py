"""``app_home_opened``: publish the person's pending reviews. Events are acked by Bolt before
the listener runs; a retried event (``X-Slack-Retry-Num``) publishes the same view again."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.context import BotContext
from bot.review_flow import publish_home

__all__ = ["register"]


def register(app: App, ctx: BotContext) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish_home(ctx, client, event["user"])
