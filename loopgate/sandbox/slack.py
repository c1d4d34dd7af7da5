"""A fake Slack: the Web API loopgate calls, and the Slack client that calls loopgate back.

**Web API** (``WebClient(base_url=fake.api_url)``): ``auth.test``, ``chat.postMessage``,
``chat.update``, ``chat.delete``, ``chat.postEphemeral``, ``conversations.open``, ``conversations.history``
(with message metadata), ``users.info``, ``views.open``/``update``/``publish``, and the
``files_upload_v2`` flow (``files.getUploadURLExternal`` → POST to the upload URL →
``files.completeUploadExternal``). Like Slack it checks the bot token (``not_authed``,
``invalid_auth``), the scopes it was given (``missing_scope`` with ``needed``), channel
membership, Block Kit limits (``invalid_blocks`` with json-pointer messages, 50 blocks per
message, 100 per view, text sizes), message length, trigger ids (3 s, single use) and view
hashes. Faults: anything :class:`FakeService` can inject (e.g. 429 with ``Retry-After``),
a per-channel posting rate, :meth:`lose_responses` — the call takes effect but the
caller never learns it (the case exactly-once posting must survive) — and :meth:`hold`, calls
that wait until released (to see what the app does while Slack is slow).

**Workspace model**: users, channels, DMs and their messages (blocks, metadata, edits, who
they would notify), ephemeral messages, open modals, each user's Home tab, files and
response-URL posts — the inspection API the tests and the browser sandbox read.

**Slack → app** (:meth:`click`, :meth:`submit`, :meth:`command`, :meth:`open_home`): builds
the payload Slack would send for a click on a real posted message or Home tab, a modal
submission, a slash command or an ``app_home_opened`` event, signs it with the app's signing
secret and POSTs it to ``request_url``, then applies the app's answer as Slack would (modal
errors, closing the modal, an immediate command reply).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopgate.sandbox.http import FakeRequest, FakeResponse, FakeService
from loopgate.sandbox.slack_limits import Notifies, check_blocks, check_view, notifications
from loopgate.sandbox.slack_payloads import (
    app_home_opened,
    block_actions,
    form_body,
    signed_headers,
    slash_command,
    view_submission,
)
from loopgate.sandbox.slack_socket import SocketModeServer

__all__ = ["Delivery", "FakeChannel", "FakeMessage", "FakeSlack", "FakeUser", "FakeView"]

MESSAGE_TEXT_MAX = 40_000
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "api.test": (),
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.delete": ("chat:write",),
    "conversations.open": ("im:write",),
    "conversations.history": (),  # depends on the conversation: see _history_scope
    "users.info": ("users:read",),
    "views.open": (),
    "views.update": (),
    "views.push": (),
    "views.publish": (),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "apps.connections.open": (),  # app-level token with connections:write, not the bot's
}


class SlackError(Exception):
    """An ``ok: false`` answer from a fake method."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        self.error, self.status, self.extra = error, status, extra
        super().__init__(error)


@dataclass
class FakeUser:
    id: str
    name: str
    real_name: str
    tz: str = "UTC"
    is_bot: bool = False

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_bot": self.is_bot,
            "deleted": False,
            "profile": {"real_name": self.real_name, "display_name": self.name},
        }


@dataclass
class FakeMessage:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    notifies: Notifies
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, oldest first; "at": when replaced
    args: dict[str, Any] = field(default_factory=dict)  # what the poster sent besides the content

    def as_api(self, *, include_metadata: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        if self.bot_id:
            out.update(bot_id=self.bot_id, app_id=self.app_id)
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = self.files
        if self.edits:
            out["edited"] = {"user": self.user, "ts": self.edits[-1]["edited_ts"]}
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class FakeChannel:
    id: str
    name: str
    is_private: bool = False
    im_user: str | None = None
    members: set[str] = field(default_factory=set)
    messages: list[FakeMessage] = field(default_factory=list)

    @property
    def is_im(self) -> bool:
        return self.im_user is not None


@dataclass
class FakeView:
    id: str
    user: str
    view: dict[str, Any]
    hash: str
    open: bool = True
    errors: dict[str, str] = field(default_factory=dict)

    def as_api(self, team_id: str, app_id: str, bot_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": team_id,
            "type": self.view.get("type", "modal"),
            "blocks": self.view.get("blocks", []),
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.hash,
            "title": self.view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": self.view.get("close"),
            "submit": self.view.get("submit"),
            "previous_view_id": None,
            "root_view_id": self.id,
            "app_id": app_id,
            "external_id": self.view.get("external_id", ""),
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        }


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    ts: str
    via: str  # chat.postEphemeral | response_url | command_reply


@dataclass
class Delivery:
    """What the app answered to a request Slack sent it."""

    status: int
    body: str
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    message_ts: str | None


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class FakeSlack(FakeService):
    """Start with ``FakeSlack().start()`` (or ``with``); point the app's WebClient at
    :attr:`api_url` and set :attr:`request_url` to the app's ``/slack/events``."""

    name = "slack"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox-0000-loopgate",  # noqa: S107 - the sandbox's own, not a secret
        signing_secret: str = "sandbox-signing-secret",  # noqa: S107
        app_token: str = "xapp-1-A0LOOPGATE-sandbox",  # noqa: S107
        scopes: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.team = {"id": "T0LOOPGATE", "domain": "loopgate-sandbox", "name": "Loopgate Sandbox"}
        self.app_id = "A0LOOPGATE"
        self.bot_user_id = "U0LOOPBOT"
        self.bot_id = "B0LOOPBOT"
        self.tokens = {bot_token}
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.socket: SocketModeServer | None = None  # started by the first apps.connections.open
        self.transport = "http"  # how Slack reaches the app: "http" (request_url) or "socket"
        self.scopes: frozenset[str] | None = frozenset(scopes) if scopes is not None else None
        self.request_url: str | None = None
        self.trigger_ttl = 3.0
        self.channel_rate: float | None = None  # posts per second per channel; None = unlimited
        self.users: dict[str, FakeUser] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.views: dict[str, FakeView] = {}
        self.homes: dict[str, FakeView] = {}
        self.ephemerals: list[Ephemeral] = []
        self.deleted: list[FakeMessage] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.api_log: list[tuple[str, dict[str, Any], str | None]] = []  # method, params, error
        self._state = threading.RLock()
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._triggers: dict[str, tuple[float, str, bool]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._lost: dict[str, int] = {}
        self._held: dict[str, tuple[threading.Event, float]] = {}
        self._last_post: dict[str, float] = {}
        self.add_user(self.bot_user_id, "loopgate", "loopgate", is_bot=True)
        self.route("POST", r"^/api/(?P<method>[A-Za-z.]+)$", self._api)
        self.route("GET", r"^/api/(?P<method>[A-Za-z.]+)$", self._api)
        self.route("POST", r"^/upload/v1/(?P<file>F\w+)$", self._upload)
        self.route("POST", r"^/hooks/response/(?P<id>\w+)$", self._response_url_post)

    # --- the workspace ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08d}"

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def add_user(
        self, user_id: str, name: str, real_name: str | None = None, *, tz: str = "UTC", is_bot: bool = False
    ) -> FakeUser:
        with self._state:
            user = FakeUser(user_id, name, real_name or name, tz, is_bot)
            self.users[user_id] = user
            return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        private: bool = False,
        members: Iterable[str] | None = None,
        bot_member: bool = True,
    ) -> FakeChannel:
        with self._state:
            people = set(members) if members is not None else {u for u in self.users if not self.users[u].is_bot}
            if bot_member:
                people.add(self.bot_user_id)
            channel = FakeChannel(channel_id, name, is_private=private, members=people)
            self.channels[channel_id] = channel
            return channel

    def seed_from_policy(self, policy: Any) -> None:
        """Users for every rep with a Slack id, channels for teams, queues and the digest."""
        for rep in policy.reps:
            if rep.slack_user:
                self.add_user(rep.slack_user, rep.id, rep.name, tz=rep.timezone)
        channels = [(t.channel, f"{t.id}-reviews") for t in policy.teams]
        channels += [(q.channel, f"{q.id}-queue") for q in policy.queues if q.channel]
        if policy.digest is not None:
            channels.append((policy.digest.channel, "leaders"))
        for channel_id, name in channels:
            if channel_id not in self.channels:
                self.add_channel(channel_id, name)

    def im_for(self, user_id: str) -> FakeChannel:
        """The bot's DM with a user (opened on first use, as conversations.open does)."""
        with self._state:
            for channel in self.channels.values():
                if channel.im_user == user_id:
                    return channel
            if user_id not in self.users:
                raise SlackError("user_not_found")
            channel = FakeChannel(f"D{user_id[1:]}", user_id, im_user=user_id, members={user_id, self.bot_user_id})
            self.channels[channel.id] = channel
            return channel

    # --- inspection -------------------------------------------------------------------------

    def messages(self, channel: str) -> list[FakeMessage]:
        """Messages in a channel (or the DM with a user id), oldest first."""
        with self._state:
            target = self.im_for(channel) if channel[0] in "UW" else self.channels[channel]
            return list(target.messages)

    def message(self, channel: str, ts: str) -> FakeMessage:
        return next(m for m in self.messages(channel) if m.ts == ts)

    def all_messages(self) -> list[FakeMessage]:
        with self._state:
            return [m for c in self.channels.values() for m in c.messages]

    def ephemerals_for(self, user: str) -> list[Ephemeral]:
        with self._state:
            return [e for e in self.ephemerals if e.user == user]

    def home(self, user: str) -> dict[str, Any] | None:
        with self._state:
            home = self.homes.get(user)
            return home.view if home else None

    def open_views(self, user: str | None = None) -> list[FakeView]:
        with self._state:
            return [v for v in self.views.values() if v.open and (user is None or v.user == user)]

    def snapshot(self) -> dict[str, Any]:
        """The whole workspace as JSON-able data: what a browser rendering of the sandbox shows."""
        with self._state:
            return {
                "team": dict(self.team),
                "users": [u.as_api() for u in self.users.values()],
                "channels": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "kind": "im" if c.is_im else ("private" if c.is_private else "public"),
                        "user": c.im_user,
                        "messages": [
                            {
                                **m.as_api(include_metadata=True),
                                "edits": len(m.edits),
                                "notifies": {
                                    "broadcasts": sorted(m.notifies.broadcasts),
                                    "users": sorted(m.notifies.users),
                                },
                            }
                            for m in c.messages
                        ],
                    }
                    for c in self.channels.values()
                ],
                "ephemerals": [dict(e.__dict__) for e in self.ephemerals],
                "homes": {user: view.view for user, view in self.homes.items()},
                "open_views": [
                    {"id": v.id, "user": v.user, "view": v.view, "errors": v.errors} for v in self.open_views()
                ],
            }

    def api_calls(self, method: str) -> list[dict[str, Any]]:
        """Parameters of every call to ``method`` (token removed), in order."""
        with self._state:
            return [params for m, params, _ in self.api_log if m == method]

    def lose_responses(self, method: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` take effect, then fail with a 503 — the caller
        cannot tell whether Slack acted (a timeout or a reset connection after the write)."""
        with self._state:
            self._lost[method] = self._lost.get(method, 0) + times

    @contextmanager
    def hold(self, method: str, *, most: float = 10.0) -> Iterator[None]:
        """Calls of ``method`` made inside the block wait until it ends (or ``most`` seconds
        pass, so a test that waits on them fails instead of hanging)."""
        released = threading.Event()
        with self._state:
            self._held[method] = (released, most)
        try:
            yield
        finally:
            with self._state:
                self._held.pop(method, None)
            released.set()

    def wait_until(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll ``check`` until it returns something truthy (the app works after it acks)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing happened within {timeout}s")
            time.sleep(0.01)

    # --- the Web API --------------------------------------------------------------------------

    def _params(self, req: FakeRequest) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[0] for k, v in req.query.items()}
        content_type = req.headers.get("content-type", "")
        if "json" in content_type and req.body:
            params.update(req.json() or {})
        elif req.body:
            params.update(req.form())
        for key in ("blocks", "metadata", "view", "files", "attachments"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    raise SlackError("invalid_arguments", errors=[f"{key} is not valid JSON"]) from None
        return params

    def _token(self, req: FakeRequest, params: dict[str, Any]) -> str | None:
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        token = params.pop("token", None)
        return str(token) if token else None

    def _api(self, req: FakeRequest) -> FakeResponse:
        method = req.match["method"]
        headers: dict[str, str] = {}
        try:
            params = self._params(req)
            token = self._token(req, params)
            params.pop("token", None)
            self._authorize(method, token, headers)
            handler = getattr(self, "_m_" + method.replace(".", "_"))
            held = self._held.get(method)
            if held is not None:
                held[0].wait(held[1])
            with self._state:
                result = handler(params)
                self.api_log.append((method, params, None))
                lost = self._lost.get(method, 0)
                if lost:
                    self._lost[method] = lost - 1
            if lost:
                return FakeResponse(503, "upstream connect error or disconnect/reset before headers", headers)
            return FakeResponse(200, {"ok": True, **result}, headers)
        except SlackError as exc:
            with self._state:
                self.api_log.append((method, {}, exc.error))
            body: dict[str, Any] = {"ok": False, "error": exc.error, **exc.extra}
            if "errors" in exc.extra:
                body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in exc.extra["errors"]]}
            if exc.error == "ratelimited":
                headers["Retry-After"] = str(exc.extra.get("retry_after", 1))
            return FakeResponse(exc.status, body, headers)

    def _authorize(self, method: str, token: str | None, headers: dict[str, str]) -> None:
        if method not in METHOD_SCOPES:
            raise SlackError("unknown_method")
        if method != "api.test":
            if not token:
                raise SlackError("not_authed")
            if (token == self.app_token) != (method == "apps.connections.open"):
                raise SlackError("not_allowed_token_type")
            if token not in self.tokens and token != self.app_token:
                raise SlackError("invalid_auth")
        if self.scopes is not None:
            headers["X-OAuth-Scopes"] = ",".join(sorted(self.scopes))
            for needed in METHOD_SCOPES[method]:
                if needed not in self.scopes:
                    raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket is None:
            self.socket = SocketModeServer(self.app_id)
        return {"url": self.socket.url}

    def stop(self) -> None:
        if self.socket is not None:
            self.socket.stop()
            self.socket = None
        super().stop()

    def _m_api_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"args": params}

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team['domain']}.slack.com/",
            "team": self.team["name"],
            "user": "loopgate",
            "team_id": self.team["id"],
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _conversation(self, channel_id: Any, *, for_post: bool = False) -> FakeChannel:
        cid = str(channel_id or "")
        if not cid:
            raise SlackError("channel_not_found")
        if cid[0] in "UW" and for_post:
            return self.im_for(cid)
        channel = self.channels.get(cid)
        if channel is None:
            raise SlackError("channel_not_found")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    def _content(self, params: dict[str, Any], *, surface: str = "message") -> tuple[str, list[dict[str, Any]]]:
        text = params.get("text") or ""
        blocks = params.get("blocks") or []
        if not isinstance(text, str):
            raise SlackError("invalid_arguments", errors=["text must be a string"])
        if not text and not blocks:
            raise SlackError("no_text")
        if len(text) > MESSAGE_TEXT_MAX:
            raise SlackError("msg_too_long")
        if blocks:
            problems = check_blocks(blocks, surface)
            if problems:
                raise SlackError("invalid_blocks", errors=problems)
        return text, blocks

    def _metadata(self, params: dict[str, Any]) -> dict[str, Any] | None:
        metadata = params.get("metadata")
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        return metadata

    def _throttle(self, channel: str) -> None:
        if self.channel_rate is None:
            return
        now = time.monotonic()
        last = self._last_post.get(channel)
        if last is not None and now - last < 1 / self.channel_rate:
            raise SlackError("ratelimited", status=429, retry_after=1)
        self._last_post[channel] = now

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(params.get("channel"), for_post=True)
        text, blocks = self._content(params)
        metadata = self._metadata(params)
        self._throttle(channel.id)
        message = FakeMessage(
            channel=channel.id,
            ts=self._new_ts(),
            user=self.bot_user_id,
            text=text,
            blocks=blocks,
            metadata=metadata,
            notifies=notifications(text, blocks, parse=params.get("parse"), link_names=params.get("link_names")),
            bot_id=self.bot_id,
            app_id=self.app_id,
            thread_ts=params.get("thread_ts"),
            args={k: v for k, v in params.items() if k not in ("text", "blocks", "metadata", "channel")},
        )
        channel.messages.append(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.as_api()}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = next((m for m in channel.messages if m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        if message.user != self.bot_user_id:
            raise SlackError("cant_update_message")
        text, blocks = self._content(params)
        message.edits.append(
            {"text": message.text, "blocks": message.blocks, "edited_ts": self._new_ts(), "at": time.time()}
        )
        message.text, message.blocks = text, blocks
        message.notifies = notifications(text, blocks, parse=params.get("parse"), link_names=params.get("link_names"))
        if "metadata" in params:
            message.metadata = self._metadata(params)
        return {"channel": channel.id, "ts": ts, "text": text, "message": message.as_api()}

    def _m_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = next((m for m in channel.messages if m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        if message.user != self.bot_user_id:
            raise SlackError("cant_delete_message")
        channel.messages.remove(message)
        self.deleted.append(message)
        return {"channel": channel.id, "ts": ts}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(params.get("channel"), for_post=True)
        user = str(params.get("user") or "")
        if user not in self.users:
            raise SlackError("user_not_found")
        if user not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks = self._content(params)
        ts = self._new_ts()
        self.ephemerals.append(Ephemeral(channel.id, user, text, blocks, ts, "chat.postEphemeral"))
        return {"message_ts": ts}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise SlackError("invalid_arguments", errors=["loopgate's fake opens one-to-one DMs only"])
        return {"channel": {"id": self.im_for(users[0]).id}}

    def _history_scope(self, channel: FakeChannel) -> str:
        if channel.is_im:
            return "im:history"
        return "groups:history" if channel.is_private else "channels:history"

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(params.get("channel"))
        needed = self._history_scope(channel)
        if self.scopes is not None and needed not in self.scopes:
            raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        limit = min(max(int(params.get("limit") or 100), 1), 999)
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or 1e12)
        inclusive = _truthy(params.get("inclusive"))
        newest_first = sorted(channel.messages, key=lambda m: float(m.ts), reverse=True)
        if inclusive:
            chosen = [m for m in newest_first if oldest <= float(m.ts) <= latest]
        else:
            chosen = [m for m in newest_first if oldest < float(m.ts) < latest]
        start = int(params.get("cursor") or 0)
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        include = _truthy(params.get("include_all_metadata"))
        return {
            "messages": [m.as_api(include_metadata=include) for m in page],
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.as_api()}

    def _issue_trigger(self, user: str) -> str:
        trigger = f"{int(time.time())}.{next(self._ids)}.{self.team['id'].lower()}"
        self._triggers[trigger] = (time.monotonic(), user, False)
        return trigger

    def _take_trigger(self, trigger_id: Any) -> str:
        entry = self._triggers.get(str(trigger_id or ""))
        if entry is None:
            raise SlackError("invalid_trigger_id")
        issued, user, used = entry
        if used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        self._triggers[str(trigger_id)] = (issued, user, True)
        return user

    def _view(self, params: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments", errors=["view is required [json-pointer:/view]"])
        if kind is not None and view.get("type") != kind:
            raise SlackError("invalid_arguments", errors=[f"must be {kind} [json-pointer:/view/type]"])
        problems = check_view(view)
        if problems:
            raise SlackError("invalid_arguments", errors=problems)
        return view

    def _view_api(self, view: FakeView) -> dict[str, Any]:
        return view.as_api(self.team["id"], self.app_id, self.bot_id)

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view(params, "modal")
        user = self._take_trigger(params.get("trigger_id"))
        opened = FakeView(self._new_id("V"), user, view, f"{time.time():.6f}.{next(self._ids)}")
        self.views[opened.id] = opened
        return {"view": self._view_api(opened)}

    def _m_views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._m_views_open(params)

    def _m_views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view(params)
        target = self.views.get(str(params.get("view_id") or ""))
        if target is None and params.get("external_id"):
            target = next((v for v in self.views.values() if v.view.get("external_id") == params["external_id"]), None)
        if target is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != target.hash:
            raise SlackError("hash_conflict")
        target.view, target.hash = view, f"{time.time():.6f}.{next(self._ids)}"
        return {"view": self._view_api(target)}

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view(params, "home")
        user = str(params.get("user_id") or "")
        if user not in self.users:
            raise SlackError("user_not_found")
        current = self.homes.get(user)
        if current is not None and params.get("hash") and params["hash"] != current.hash:
            raise SlackError("hash_conflict")
        home = FakeView(
            current.id if current else self._new_id("V"), user, view, f"{time.time():.6f}.{next(self._ids)}"
        )
        self.homes[user] = home
        return {"view": self._view_api(home)}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = int(params.get("length") or 0)
        if not filename or length <= 0:
            raise SlackError("invalid_arguments", errors=["filename and a positive length are required"])
        file_id = self._new_id("F")
        self.files[file_id] = {"id": file_id, "name": filename, "length": length, "content": None, "shared": []}
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _upload(self, req: FakeRequest) -> FakeResponse:
        with self._state:
            file = self.files.get(req.match["file"])
            if file is None:
                return FakeResponse(404, "file not found")
            file["content"] = req.body
            if len(req.body) != file["length"]:
                return FakeResponse(400, f"expected {file['length']} bytes, got {len(req.body)}")
        return FakeResponse(200, f"OK - {len(req.body)}")

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", errors=["files is required"])
        done = []
        for entry in entries:
            file = self.files.get(str(entry.get("id")))
            if file is None or file["content"] is None:
                raise SlackError("file_not_found" if file is None else "file_upload_not_complete")
            file["title"] = entry.get("title") or file["name"]
            done.append({k: v for k, v in file.items() if k != "content"})
        channel_id = params.get("channel_id") or params.get("channels")
        if channel_id:
            channel = self._conversation(channel_id)
            comment = str(params.get("initial_comment") or "")
            message = FakeMessage(
                channel=channel.id,
                ts=self._new_ts(),
                user=self.bot_user_id,
                text=comment,
                blocks=[],
                metadata=None,
                notifies=notifications(comment, [], parse=None, link_names=None),
                bot_id=self.bot_id,
                app_id=self.app_id,
                thread_ts=params.get("thread_ts"),
                files=done,
            )
            channel.messages.append(message)
            for file in done:
                self.files[file["id"]]["shared"].append(channel.id)
        return {"files": done}

    def _response_url_post(self, req: FakeRequest) -> FakeResponse:
        with self._state:
            target = self._response_urls.get(req.match["id"])
            if target is None:
                return FakeResponse(404, "invalid_token")
            body = req.json() or {}
            text, blocks = str(body.get("text") or ""), body.get("blocks") or []
            problems = check_blocks(blocks) if blocks else []
            if problems:
                return FakeResponse(400, {"ok": False, "error": "invalid_blocks", "errors": problems})
            if body.get("response_type") == "in_channel":
                channel = self.channels[target.channel]
                channel.messages.append(
                    FakeMessage(target.channel, self._new_ts(), self.bot_user_id, text, blocks, None,
                                notifications(text, blocks, parse=None, link_names=None), self.bot_id, self.app_id)
                )  # fmt: skip
            else:
                self.ephemerals.append(
                    Ephemeral(target.channel, target.user, text, blocks, self._new_ts(), "response_url")
                )
        return FakeResponse(200, {"ok": True})

    def _response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        key = f"R{next(self._ids):08d}"
        self._response_urls[key] = _ResponseUrl(channel, user, message_ts)
        return f"{self.url}/hooks/response/{key}"

    # --- Slack calling the app ------------------------------------------------------------------

    def deliver(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        url: str | None = None,
    ) -> Delivery:
        """POST a signed request to the app (``url``, else :attr:`request_url`), as Slack does."""
        target = url or self.request_url
        if not target:
            raise RuntimeError("set FakeSlack.request_url to the app's /slack/events first")
        headers = signed_headers(
            secret or self.signing_secret, body, content_type, timestamp=timestamp, retry_num=retry_num
        )
        parts = urlsplit(target)
        started = time.perf_counter()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request("POST", parts.path or "/", body=body.encode(), headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            return Delivery(response.status, text, time.perf_counter() - started)
        finally:
            conn.close()

    def _send(
        self,
        kind: str,
        payload: dict[str, Any],
        body: str,
        content_type: str,
        retry_num: int | None,
        url: str | None = None,
    ) -> Delivery:
        """Deliver to the app over the configured transport (HTTP request URL or Socket Mode)."""
        if self.transport == "http":
            return self.deliver(body, content_type, retry_num=retry_num, url=url)
        if self.socket is None:
            raise RuntimeError("no Socket Mode connection: the app never called apps.connections.open")
        ack = self.socket.send(kind, payload, accepts_response_payload=kind != "events_api", retry=retry_num or 0)
        return Delivery(200, json.dumps(ack.payload) if ack.payload else "", ack.elapsed)

    def _user_dict(self, user: str) -> dict[str, Any]:
        known = self.users.get(user)
        return {"id": user, "name": known.name if known else user.lower()}

    @staticmethod
    def _find_action(blocks: list[dict[str, Any]], action_id: str, value: str | None) -> tuple[str, dict[str, Any]]:
        for block in blocks:
            elements = list(block.get("elements", [])) if block.get("type") == "actions" else []
            if block.get("type") == "section" and block.get("accessory"):
                elements.append(block["accessory"])  # a button beside a section's text
            for element in elements:
                if element.get("action_id") == action_id and (value is None or element.get("value") == value):
                    return str(block.get("block_id", "")), element
        raise AssertionError(f"no button {action_id} (value {value}) in these blocks")

    def click(
        self,
        user: str,
        action_id: str,
        *,
        channel: str | None = None,
        ts: str | None = None,
        home: bool = False,
        value: str | None = None,
        retry_num: int | None = None,
        url: str | None = None,
    ) -> Delivery:
        """Click a button on a posted message (``channel`` + ``ts``) or on ``user``'s Home tab
        (sent to ``url`` if given, else to :attr:`request_url`)."""
        with self._state:
            trigger = self._issue_trigger(user)
            if home:
                view = self.homes[user]
                block_id, element = self._find_action(view.view.get("blocks", []), action_id, value)
                payload = block_actions(
                    team=self.team, app_id=self.app_id, user=self._user_dict(user), action=element,
                    block_id=block_id, trigger_id=trigger, response_url=None, view=self._view_api(view),
                )  # fmt: skip
            else:
                assert channel is not None and ts is not None
                conversation = self.im_for(channel) if channel[0] in "UW" else self.channels[channel]
                message = next(m for m in conversation.messages if m.ts == ts)
                block_id, element = self._find_action(message.blocks, action_id, value)
                payload = block_actions(
                    team=self.team, app_id=self.app_id, user=self._user_dict(user), action=element,
                    block_id=block_id, trigger_id=trigger,
                    response_url=self._response_url(conversation.id, user, ts),
                    message=message.as_api(), channel={"id": conversation.id, "name": conversation.name},
                )  # fmt: skip
        return self._send(
            "interactive", payload, form_body(payload), "application/x-www-form-urlencoded", retry_num, url
        )

    @staticmethod
    def _state_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
        kind = element["type"]
        if kind == "static_select":
            options = list(element.get("options") or [])
            for group in element.get("option_groups") or []:
                options += group.get("options", [])
            selected = next((o for o in options if o["value"] == value), None)
            if value is not None and selected is None:
                raise AssertionError(f"{value!r} is not an option of this select")
            return {"type": kind, "selected_option": selected}
        if kind == "users_select":
            return {"type": kind, "selected_user": value}
        return {"type": kind, "value": value}

    def submit(self, view_id: str, user: str, values: dict[str, Any]) -> Delivery:
        """Submit an open modal with ``values`` by input block id (option value, user id or
        text; ``None`` leaves an input empty). Initial options count as chosen, as in Slack."""
        with self._state:
            opened = self.views[view_id]
            state: dict[str, dict[str, Any]] = {}
            for block in opened.view.get("blocks", []):
                if block.get("type") != "input":
                    continue
                element = block["element"]
                block_id = block["block_id"]
                if block_id in values:
                    value = values[block_id]
                else:
                    initial = element.get("initial_option") or {}
                    value = initial.get("value") or element.get("initial_user") or element.get("initial_value")
                state[block_id] = {element["action_id"]: self._state_value(element, value)}
            view = self._view_api(opened)
            view["state"] = {"values": state}
            payload = view_submission(
                team=self.team, app_id=self.app_id, user=self._user_dict(user), view=view,
                trigger_id=self._issue_trigger(user),
            )  # fmt: skip
        delivery = self._send("interactive", payload, form_body(payload), "application/x-www-form-urlencoded", None)
        answer = delivery.json() if delivery.status == 200 and delivery.body.strip() else None
        with self._state:
            if isinstance(answer, dict) and answer.get("response_action") == "errors":
                opened.errors = dict(answer.get("errors") or {})
            elif isinstance(answer, dict) and answer.get("response_action") == "update":
                opened.view, opened.errors = answer["view"], {}
            elif delivery.status == 200:
                opened.open, opened.errors = False, {}
        return delivery

    def command(self, user: str, text: str, *, channel: str | None = None, command: str = "/loopgate") -> Delivery:
        """Run a slash command; an immediate answer is recorded as an ephemeral reply."""
        with self._state:
            conversation = self.channels[channel] if channel else self.im_for(user)
            body = slash_command(
                team=self.team, app_id=self.app_id, user=self._user_dict(user),
                channel={"id": conversation.id, "name": conversation.name}, command=command, text=text,
                response_url=self._response_url(conversation.id, user), trigger_id=self._issue_trigger(user),
            )  # fmt: skip
        fields = dict(parse_qsl(body))
        delivery = self._send("slash_commands", fields, body, "application/x-www-form-urlencoded", None)
        if delivery.status == 200 and delivery.body.strip():
            try:
                answer = delivery.json()
            except ValueError:
                answer = {"text": delivery.body}
            if isinstance(answer, dict) and (answer.get("text") or answer.get("blocks")):
                with self._state:
                    self.ephemerals.append(
                        Ephemeral(conversation.id, user, str(answer.get("text") or ""), answer.get("blocks") or [],
                                  self._new_ts(), "command_reply")
                    )  # fmt: skip
        return delivery

    def open_home(self, user: str, *, retry_num: int | None = None) -> Delivery:
        """The user opens the app's Home tab (``app_home_opened``)."""
        with self._state:
            home = self.homes.get(user)
            body = app_home_opened(
                team=self.team, app_id=self.app_id, user=self._user_dict(user), channel=self.im_for(user).id,
                view=self._view_api(home) if home else None, bot_user=self.bot_user_id,
            )  # fmt: skip
        return self._send("events_api", json.loads(body), body, "application/json", retry_num)
