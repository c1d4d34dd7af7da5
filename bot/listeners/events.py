"""``app_home_opened``: publish the person's pending reviews, after the ack (Bolt answers only
when the listener returns, and Slack retries an event it waited 3 s for); a retried event
(``X-Slack-Retry-Num``) publishes the same view again."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.context import BotContext
from bot.listeners.errors import after_ack
from bot.review_flow import publish_home

__all__ = ["register"]


def register(app: App, ctx: BotContext) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            after_ack(ctx, body, client, lambda: publish_home(ctx, client, event["user"]))
