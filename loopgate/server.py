"""The process's HTTP front: ``POST /slack/events`` into Bolt, ``GET /healthz`` for the load
balancer. Standard library only (``ThreadingHTTPServer``, HTTP/1.1 keep-alive): put it behind
a TLS-terminating proxy or load balancer, as Slack only calls HTTPS request URLs.

Bodies over 1 MB are refused with 413 on every path before they are read (Slack's payloads
are far smaller), a malformed ``Content-Length`` with 400; every Slack request is then verified
by Bolt (signature, 5-minute window → 401).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest

__all__ = ["EVENTS_PATH", "HEALTH_PATH", "HttpFront"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY = 1_000_000

Health = Callable[[], tuple[bool, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    # the standard library's backlog of 5 drops connections in a burst of clicks, and a dropped
    # SYN costs the client a one-second retransmit — far too long for Slack's 3-second budget
    request_queue_size = 256
    daemon_threads = True


class HttpFront:
    """Serves Bolt (unless ``app`` is None, e.g. in Socket Mode) and the health check."""

    name = "http"

    def __init__(self, app: App | None, *, host: str, port: int, health: Health) -> None:
        self.app, self.health = app, health
        front = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "loopgate"
            sys_version = ""

            def do_POST(self) -> None:
                front._post(self)

            def do_GET(self) -> None:
                front._get(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http %s", format % args)

        self._server = _Server((host, port), _Handler)
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._answered = threading.Condition()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-front", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, then wait (up to ``timeout``) until the requests in flight are
        answered: listeners run in the request threads, which would die with the process."""
        if self._thread is not None:  # shutdown() waits for serve_forever, which must be running
            self._server.shutdown()
            self._thread = None
        self._server.server_close()
        with self._answered:
            self._answered.wait_for(lambda: self._in_flight == 0, timeout)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: str, headers: Mapping[str, Sequence[str]]) -> None:
        data = body.encode()
        handler.send_response(status)
        for key, values in headers.items():
            if key.lower() in ("content-length", "connection"):
                continue
            for value in values:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        with self._answered:
            self._in_flight += 1
        try:
            self._answer(handler)
        finally:
            with self._answered:
                self._in_flight -= 1
                self._answered.notify_all()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        declared = (handler.headers.get("Content-Length") or "0").strip()
        if not (declared.isascii() and declared.isdigit()):
            # int() would raise on "x" (a traceback) and take "-1" (read until the client hangs
            # up); the body's end is unknown, so the connection cannot carry another request
            handler.close_connection = True
            self._send(handler, 400, "", {})
            return
        length = int(declared)
        if length > MAX_BODY:  # on every path: a 404 must not read gigabytes into memory either
            handler.close_connection = True
            self._send(handler, 413, "", {})
            return
        if urlsplit(path).path != EVENTS_PATH or self.app is None:
            handler.rfile.read(length)
            self._send(handler, 404, "", {})
            return
        body = handler.rfile.read(length).decode("utf-8", errors="replace")
        headers: dict[str, str | Sequence[str]] = {k.lower(): [v] for k, v in handler.headers.items()}
        try:
            request = BoltRequest(body=body, query=query, headers=headers)
        except (ValueError, TypeError, AttributeError):
            # Bolt parses the body before it checks the signature: a payload that is not a JSON
            # object (`payload=null`, `payload=[1]`, `payload={x`) raises here, and unanswered it
            # drops the connection and prints a traceback for anyone who can reach the port
            log.info("refused a malformed request to %s (%d bytes)", EVENTS_PATH, length)
            self._send(handler, 400, "", {})
            return
        response = self.app.dispatch(request)
        self._send(handler, response.status, response.body or "", response.headers)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.partition("?")[0] != HEALTH_PATH:
            self._send(handler, 404, "", {})
            return
        ok, details = self.health()
        self._send(
            handler,
            200 if ok else 503,
            json.dumps({"status": "ok" if ok else "unavailable", **details}),
            {"Content-Type": ["application/json"]},
        )
