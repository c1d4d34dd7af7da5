"""Logging for every command: one format, and secrets scrubbed from every record.

Tokens reach log records in ways no single call site controls (a library's debug line, an
exception's repr), so the filter works on the final message: it removes the configured
secret values and anything shaped like a Slack token (``xoxb-``, ``xoxp-``, ``xapp-``…).
There is one filter per process: the CLI installs it before any command runs, and reading the
settings (:func:`loopgate.settings.load_settings`) hands it the secrets they hold, so a
one-shot ``sync`` or ``writeback`` scrubs its warnings as ``serve`` does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["RedactSecrets", "configure_logging", "process_filter", "redact"]

_SLACK_TOKEN = re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]+")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub these too (longest first, so a secret containing another goes whole)."""
        known = set(self.secrets) | {s for s in secrets if s and len(s) >= 6}
        self.secrets = sorted(known, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return _SLACK_TOKEN.sub("[redacted-token]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactSecrets()


def configure_logging(level: str, secrets: Iterable[str] = ()) -> RedactSecrets:
    """Root logging at ``level`` with the process's redaction filter on every handler."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    _FILTER.add(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FILTER)
    return _FILTER


def process_filter() -> RedactSecrets:
    """The filter :func:`configure_logging` puts on every handler."""
    return _FILTER


def redact(secrets: Iterable[str]) -> None:
    """Scrub these secrets from every log record from now on."""
    _FILTER.add(secrets)
