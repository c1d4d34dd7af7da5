"""The Socket Mode side of the fake Slack: a WebSocket endpoint that app connections open
(``apps.connections.open`` hands out its URL) and that delivers envelopes to the app.

Just enough RFC 6455 for slack_sdk's built-in Socket Mode client: the HTTP upgrade with
``Sec-WebSocket-Accept``, unmasked server frames, masked client frames, text/ping/pong/close.
Slack's protocol on top: ``hello`` on connect, then envelopes
``{envelope_id, type, payload, accepts_response_payload}`` that the app acknowledges with
``{envelope_id, payload?}``. Plain TCP on 127.0.0.1 (slack_sdk uses TLS only on port 443).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
import socketserver
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SocketAck", "SocketModeServer"]

log = logging.getLogger(__name__)

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class SocketAck:
    """The app's acknowledgement of one envelope."""

    envelope_id: str
    payload: Any
    elapsed: float


@dataclass
class _Peer:
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True


def _frame(opcode: int, data: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(data)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + data


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(sock, 2)
    opcode, masked, n = first & 0x0F, second & 0x80, second & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(sock, 8))[0]
    mask = _read_exact(sock, 4) if masked else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(sock, n)))
    return opcode, data


class SocketModeServer:
    """Accepts Socket Mode connections; :meth:`send` delivers an envelope and waits for its ack."""

    def __init__(self, app_id: str, host: str = "127.0.0.1") -> None:
        self.app_id = app_id
        self.peers: list[_Peer] = []
        self.acks: dict[str, SocketAck] = {}
        self._sent_at: dict[str, float] = {}
        self._cond = threading.Condition()
        server = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        self._server = socketserver.ThreadingTCPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-socket", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        return f"ws://{host}:{port}/link/?ticket={uuid.uuid4()}&app_id={self.app_id}"

    def stop(self) -> None:
        with self._cond:
            for peer in self.peers:
                peer.open = False
                with contextlib.suppress(OSError):  # already gone
                    peer.sock.shutdown(socket.SHUT_RDWR)
        self._server.shutdown()
        self._server.server_close()

    @property
    def connected(self) -> int:
        with self._cond:
            return sum(1 for p in self.peers if p.open)

    def _handshake(self, sock: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            request += chunk
        headers: dict[str, str] = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not key or headers.get("upgrade", "").lower() != "websocket":
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return True

    def _serve(self, sock: socket.socket) -> None:
        if not self._handshake(sock):
            return
        peer = _Peer(sock)
        with self._cond:
            self.peers.append(peer)
            self._cond.notify_all()
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": self.app_id},
                 "debug_info": {"host": "loopgate-fake", "approximate_connection_time": 3600}}  # fmt: skip
        self._write(peer, 0x1, json.dumps(hello).encode())
        try:
            while peer.open:
                opcode, data = _read_frame(sock)
                if opcode == 0x8:  # close
                    self._write(peer, 0x8, data[:2])
                    break
                if opcode == 0x9:  # ping → pong
                    self._write(peer, 0xA, data)
                elif opcode == 0x1:
                    self._received(json.loads(data))
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            with self._cond:
                peer.open = False
                self._cond.notify_all()

    def _write(self, peer: _Peer, opcode: int, data: bytes) -> None:
        with peer.lock:
            peer.sock.sendall(_frame(opcode, data))

    def _received(self, message: dict[str, Any]) -> None:
        envelope_id = message.get("envelope_id")
        if not envelope_id:
            return
        with self._cond:
            sent = self._sent_at.pop(envelope_id, time.perf_counter())
            self.acks[envelope_id] = SocketAck(envelope_id, message.get("payload"), time.perf_counter() - sent)
            self._cond.notify_all()

    def wait_connected(self, timeout: float = 10) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(p.open for p in self.peers), timeout)

    def send(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool, retry: int = 0, timeout: float = 10
    ) -> SocketAck:
        """Deliver an envelope to a connected app and wait for its acknowledgement."""
        if not self.wait_connected(timeout):
            raise AssertionError("no app is connected over Socket Mode")
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry,
            "retry_reason": "timeout" if retry else "",
        }
        with self._cond:
            peer = next(p for p in self.peers if p.open)
            self._sent_at[envelope_id] = time.perf_counter()
        self._write(peer, 0x1, json.dumps(envelope).encode())
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"the app did not acknowledge envelope {envelope_id} within {timeout}s")
            return self.acks[envelope_id]
