"""The sandbox: fake Salesforce, HubSpot and Slack on 127.0.0.1, the demo policy, a SQLite
store, and :class:`~loopgate.settings.Settings` that point loopgate's real clients at them.

Shared by ``loopgate demo`` (one accelerated run) and ``loopgate serve --sandbox`` (long
running, real time): the same services the tests use, so the sandbox shows what production
does — only the other ends of the wires are local.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.migrate import upgrade
from loopgate.demo.folder import DB_NAME, POLICY_NAME, DemoFolder
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from loopgate.sandbox.slack import FakeSlack
from loopgate.settings import Settings

__all__ = ["DEMO_START", "DemoClock", "Sandbox", "demo_policy_text"]

# Tuesday of ISO week 2026-W46, 14:00 UTC: working hours in New York and in Europe. A fixed
# start makes two demos identical; the weekly digest then covers that week.
DEMO_START = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)
_OOO = ("2026-11-09", "2026-11-20")  # the out-of-office dates in demo_policy.yaml


class DemoClock:
    """The demo's clock: moved forward on purpose (SLA timers, the weekly digest) instead of
    waiting; every part of loopgate and the fakes reads the same one."""

    def __init__(self, at: datetime) -> None:
        self._at = at
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._at

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = max(self._at, at)


def demo_policy_text(today: date | None = None) -> str:
    """The demo policy; with ``today``, the out-of-office rep is away around that day instead
    (``serve --sandbox`` runs in real time)."""
    text = resources.files("loopgate.sandbox").joinpath("demo_policy.yaml").read_text(encoding="utf-8")
    if today is not None:
        text = text.replace(_OOO[0], (today - timedelta(days=1)).isoformat())
        text = text.replace(_OOO[1], (today + timedelta(days=10)).isoformat())
    return text


class Sandbox:
    """The three fakes, started, with the demo org's people in Slack. Use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        clock: Any,
        *,
        option: str = "--out",
        today: date | None = None,
        latency: float = 0.0,
        sync_interval: str | None = None,
    ) -> None:
        """Takes ``workdir`` (see :mod:`loopgate.demo.folder`; ``option`` names it in a refusal)
        until :meth:`stop`, and writes the demo policy there."""
        self.workdir = workdir
        self.clock = clock
        self.folder = DemoFolder(workdir, option).claim()
        try:
            self.policy_path = workdir / POLICY_NAME
            text = demo_policy_text(today)
            if sync_interval is not None:
                text = text.replace("sync: {interval: 30s}", f"sync: {{interval: {sync_interval}}}")
            self.policy_path.write_text(text, encoding="utf-8")
            self.loaded: LoadedPolicy = parse_policy(text, str(self.policy_path))
        except BaseException:
            self.folder.release()
            raise
        self.salesforce = FakeSalesforce(clock=clock)
        self.hubspot = FakeHubSpot(clock=clock)
        self.slack = FakeSlack()
        for fake in (self.salesforce, self.hubspot):
            fake.latency = latency
        self.db_path = workdir / DB_NAME

    def start(self) -> Sandbox:
        try:
            for fake in (self.salesforce, self.hubspot, self.slack):
                fake.start()
            self.slack.seed_from_policy(self.loaded.policy)
            self.slack.add_user("U0GUEST", "guest", "Guest (not in the policy)")
            for channel in self.slack.channels.values():
                if not channel.is_im:
                    channel.members.add("U0GUEST")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the fakes (the fake Salesforce removes its CA bundle) and free the folder; safe
        to call more than once, and on a sandbox that never started."""
        try:
            for fake in (self.slack, self.hubspot, self.salesforce):
                fake.stop()
        finally:
            self.folder.release()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def fresh_database(self) -> Database:
        """A new, migrated store (the previous run's, in this demo folder, is replaced)."""
        self.folder.remove_store()
        db = Database(self.database_url)
        upgrade(db)
        return db

    def settings(self) -> Settings:
        """Settings pointing loopgate's clients at the fakes, read from nothing else: neither
        the caller's environment nor a ``.env`` file reaches the sandbox — a real CRM's token
        cannot leak in, and a production setting that is wrong (or merely different) cannot
        stop or change the demo, which promises nothing to configure."""
        return _SandboxSettings(
            loopgate_database_url=self.database_url,
            loopgate_policy=self.policy_path,
            salesforce_instance_url=self.salesforce.url,
            salesforce_access_token=SecretStr(self.salesforce.access_token),
            salesforce_ca_bundle=self.salesforce.ca_bundle,
            hubspot_access_token=SecretStr("pat-sandbox-token"),
            hubspot_base_url=self.hubspot.url,
            hubspot_search_per_second=5.0,
            slack_bot_token=SecretStr(self.slack.bot_token),
            slack_signing_secret=SecretStr(self.slack.signing_secret),
            slack_api_url=self.slack.api_url,
        )


class _SandboxSettings(Settings):
    """:class:`Settings` built from the values given to it only (every other one its default)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
