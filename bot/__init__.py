"""The Slack adapter (DESIGN §6): Block Kit builders, Bolt listeners and the outbox notifier.

Map of the package:

* :mod:`bot.app` — ``build_app`` (the Bolt app) and ``web_client``;
* :mod:`bot.listeners` — ``actions``, ``views``, ``commands``, ``events``, ``errors``, each
  with ``register(app, ctx)``;
* :mod:`bot.notifier` — ``SlackNotifier``, the outbox handler for ``slack.*`` effects, and
  ``enqueue_message`` for other parts of loopgate;
* :mod:`bot.blocks` — pure builders (escalation, assignment, modals, home, replies) and safe
  primitives; :mod:`bot.text` — escaping and clipping of CRM text;
* :mod:`bot.cards` / :mod:`bot.queries` — what the messages show, read from the store;
* :mod:`bot.sla` — when a review is due (replaceable by the scheduler's clock);
* :mod:`bot.ids` — every id Slack sends back, shared by builders, listeners and the manifest test.
"""
