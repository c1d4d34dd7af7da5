"""A small HTTP(S) server base for local fakes of Salesforce, HubSpot and Slack.

The fakes are a product feature (``loopgate demo``, ``loopgate serve --sandbox``) and the
tests' stand-in for the real services, so they behave like services: they listen on
127.0.0.1 (port 0 unless told), speak HTTP/1.1 with keep-alive, log every request, answer
unknown paths with 404, and can be told to fail (status, headers, body, for the next N
matching requests) or to be slow. Salesforce is HTTPS-only in simple-salesforce, so a fake
can serve TLS with a throwaway CA made by ``trustme``.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeRequest", "FakeResponse", "FakeService", "Fault", "LoggedRequest"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(slots=True)
class FakeResponse:
    status: int = 200
    body: Any = None  # JSON-able, or bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        return json.dumps(self.body).encode(), "application/json;charset=UTF-8"


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    at: float
    route: str | None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``path`` (regex) with this response;
    ``after_applying``: do the request's work first, then lose its answer (a gateway that timed
    out after the service applied the write — the caller cannot know it took effect)."""

    path: re.Pattern[str]
    response: FakeResponse
    times: int
    method: str | None = None
    after_applying: bool = False


Handler = Callable[[FakeRequest], FakeResponse]


class FakeService:
    """Subclass and register routes with :meth:`route` in ``__init__``."""

    name = "fake"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, tls: bool = False) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[LoggedRequest] = []
        self.errors: list[str] = []
        self.latency = 0.0
        self.host, self._port, self.tls = host, port, tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_bundle: Path | None = None

    # --- routes and faults -------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler, pattern))

    def inject(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        after_applying: bool = False,
    ) -> None:
        """Make the next ``times`` requests whose path matches ``path`` fail this way (see :class:`Fault`)."""
        response = FakeResponse(status, body, dict(headers or {}))
        with self._lock:
            self._faults.append(Fault(re.compile(path), response, times, method, after_applying))

    def calls(self, path: str | None = None, method: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally those whose path matches a regex and/or a method."""
        pattern = re.compile(path) if path else None
        with self._lock:
            return [
                r
                for r in self.requests
                if (pattern is None or pattern.search(r.path)) and (method is None or r.method == method)
            ]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.errors.clear()

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> FakeService:
        service = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes; with Nagle on, keep-alive clients wait for
            # a delayed ACK (~40 ms) on every request (connectors branch)
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                service._dispatch(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", service.name, format % args)

        server = ThreadingHTTPServer((self.host, self._port), _Handler, bind_and_activate=False)
        server.daemon_threads = True
        # a real service does not drop a burst of connections (the default backlog is 5, and a
        # dropped SYN costs the client a one-second retransmit)
        server.request_queue_size = 256
        try:
            server.server_bind()
            server.server_activate()
        except BaseException:  # a port in use: the caller says so in one line, the socket goes
            server.server_close()
            raise
        if self.tls:
            server.socket = self._tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        # a short poll interval: stop() waits for the serve loop to notice, and tests stop a lot
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tls_context(self) -> ssl.SSLContext:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix=f"loopgate-{self.name}-ca-")
        self.ca_bundle = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    # --- request handling -------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        method = handler.command.upper()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if self.latency:
            time.sleep(self.latency)
        route_name: str | None = None
        fault = self._fault_for(method, parts.path)
        response = None if fault is None or fault.after_applying else fault.response
        if response is None:
            for route_method, pattern, fn, name in self._routes:
                match = pattern.match(parts.path)
                if route_method == method and match:
                    route_name = name
                    request = FakeRequest(method, parts.path, parse_qs(parts.query), headers, body, match)
                    try:
                        response = fn(request)
                    except Exception as exc:  # a bug in a fake must be loud, not a hung client
                        log.exception("%s route %s failed", self.name, name)
                        self.errors.append(f"{method} {parts.path}: {type(exc).__name__}: {exc}")
                        response = FakeResponse(500, {"error": "fake_internal_error", "detail": str(exc)})
                    break
            else:
                response = FakeResponse(404, {"error": "not_found", "path": parts.path})
            if fault is not None:  # applied: now the answer is lost
                response = fault.response
        with self._lock:
            self.requests.append(
                LoggedRequest(
                    method, parts.path, parse_qs(parts.query), headers, body, response.status, time.time(), route_name
                )
            )
        payload, content_type = response.encode()
        handler.send_response(response.status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in response.headers.items():
            if key.lower() not in ("content-type", "content-length"):
                handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and (fault.method in (None, method)) and fault.path.search(path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None
