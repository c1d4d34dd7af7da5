"""Bolt listeners, one module per kind of request, each with ``register(app, ctx)``."""

from __future__ import annotations

from slack_bolt import App

from bot.context import BotContext
from bot.listeners import actions, audit_sample, commands, errors, events, first_touch, views

__all__ = ["register"]


def register(app: App, ctx: BotContext) -> None:
    errors.register(app)
    actions.register(app, ctx)
    views.register(app, ctx)
    commands.register(app, ctx)
    events.register(app, ctx)
    first_touch.register(app, ctx)  # the scheduler's nudges and focus lists
    audit_sample.register(app, ctx)  # the weekly digest's Confirm / Flag…
