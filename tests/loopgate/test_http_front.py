"""The bot's HTTP front refuses bodies Bolt cannot parse with 400, before any listener runs,
and on shutdown answers the requests it has taken."""

from __future__ import annotations

import http
import http.client
import socket
import threading
from urllib.parse import urlsplit

import pytest
from slack_bolt import BoltRequest, BoltResponse

from core.policy import LoadedPolicy
from core.store.db import Database
from loopgate.runtime import compose
from loopgate.sandbox.slack import FakeSlack
from loopgate.sandbox.slack_payloads import signed_headers
from loopgate.server import HttpFront
from tests.bot.conftest import MANIFEST_SCOPES, settings_for


@pytest.mark.parametrize("body", ["payload=%7Bnot-json", "payload=null", "payload=%5B1%5D", "payload=%22x%22"])
def test_given_a_payload_that_is_not_a_json_object_when_posted_then_400_not_a_dropped_connection(
    db: Database, example_policy: LoadedPolicy, body: str
) -> None:
    with FakeSlack(scopes=MANIFEST_SCOPES) as fake:
        runtime = compose(settings_for(fake), db, example_policy, port=0, outbox=False)
        runtime.front.start()
        try:
            parts = urlsplit(runtime.front.url)
            for secret in (fake.signing_secret, "not-the-secret"):  # signed or not: Bolt parses first
                headers = signed_headers(secret, body, "application/x-www-form-urlencoded")
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
                try:
                    conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
                    assert conn.getresponse().status == 400
                finally:
                    conn.close()
        finally:
            runtime.front.stop()
            runtime.pool.shutdown()


class _HeldApp:
    """A stand-in for Bolt that answers only when told to (what a slow listener looks like)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def dispatch(self, request: BoltRequest) -> BoltResponse:
        self.entered.set()
        self.release.wait(10)
        return BoltResponse(status=200, body="")


def test_given_a_request_in_flight_when_the_front_stops_then_it_is_answered_before_stop_returns() -> None:
    app = _HeldApp()
    front = HttpFront(app, host="127.0.0.1", port=0, health=lambda: (True, {}))  # type: ignore[arg-type]
    front.start()
    statuses: list[int] = []

    def post() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        try:
            conn.request("POST", "/slack/events", body=b"payload=%7B%7D")
            statuses.append(conn.getresponse().status)
        finally:
            conn.close()

    client = threading.Thread(target=post)
    client.start()
    assert app.entered.wait(10)
    stopping = threading.Thread(target=front.stop)
    stopping.start()
    stopping.join(0.5)
    assert stopping.is_alive()  # listeners run on the request threads: stop waits for them
    app.release.set()
    stopping.join(10)
    client.join(10)
    assert not stopping.is_alive() and statuses == [200]


@pytest.mark.parametrize(
    ("path", "length", "status"),
    [
        ("/anything", "2000000", 413),  # a 404 too: its body is not read into memory
        ("/slack/events", "2000000", 413),
        ("/anything", "abc", 400),
        ("/slack/events", "-1", 400),
        ("/slack/events", "1_0", 400),
    ],
)
def test_given_a_body_too_large_or_a_malformed_length_when_posted_anywhere_then_refused_before_reading(
    path: str, length: str, status: int
) -> None:
    front = HttpFront(_HeldApp(), host="127.0.0.1", port=0, health=lambda: (True, {}))  # type: ignore[arg-type]
    front.start()
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as conn:
            conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
            conn.shutdown(socket.SHUT_WR)  # no body follows: a front that reads it gets a short one
            answer = conn.makefile("rb").read()
    finally:
        front.stop()
    assert answer.split(b"\r\n")[0] == f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()
