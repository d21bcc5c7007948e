"""The client side of RFC 6455, as little of it as a measuring screen needs.

* `handshake_request` builds the HTTP/1.1 Upgrade request (a fresh random
  ``Sec-WebSocket-Key``) and `check_handshake` checks the answer: status 101 and
  ``Sec-WebSocket-Accept`` equal to base64(SHA-1(key + the RFC's GUID)).
* `client_frame` builds a client frame: FIN set, masked with a fresh 4-byte key, as
  RFC 6455 §5.3 requires of every client frame.
* `FrameParser` cuts server frames out of the byte stream (opcode, FIN, payload bounds)
  without copying payloads: `frame` gets the buffer and the payload's start and end,
  valid only during the call. Server frames must not be masked (a masked one is a
  `ProtocolError`).

Not implemented: extensions (no ``permessage-deflate`` is offered, so the server sends
none), subprotocols, TLS, and checking that text payloads are valid UTF-8.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import Final

#: RFC 6455 §1.3: appended to the key to compute the accept value.
GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

#: Close codes (RFC 6455 §7.4.1).
NORMAL_CLOSURE: Final = 1000
PROTOCOL_ERROR: Final = 1002

#: Most bytes of a handshake answer's status line and headers.
MAX_HANDSHAKE: Final = 16 * 1024


class ProtocolError(Exception):
    """The server broke RFC 6455 (or the handshake was refused)."""


class HandshakeRefused(ProtocolError):
    """The server did not switch protocols: its status and the start of its answer."""

    def __init__(self, status: int, head: bytes) -> None:
        super().__init__(f"handshake refused: HTTP {status}: {head[:300]!r}")
        self.status = status


def accept_value(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` expected for ``Sec-WebSocket-Key`` `key`."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_request(
    host: str, port: int, path: str, headers: Mapping[str, str] | None = None
) -> tuple[bytes, bytes]:
    """The Upgrade request for `path` and the accept value its answer must carry."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return request, accept_value(key)


def check_handshake(head: bytes, accept: bytes) -> None:
    """Check the answer's status line and headers (`head`, up to the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP answer: {lines[0][:100]!r}")
    status = int(parts[1])
    if status != 101:
        raise HandshakeRefused(status, head)
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"upgrade", b"").lower() != b"websocket":
        raise ProtocolError("the answer does not upgrade to websocket")
    if fields.get(b"sec-websocket-accept") != accept:
        raise ProtocolError("wrong Sec-WebSocket-Accept")
    if fields.get(b"sec-websocket-extensions"):
        raise ProtocolError("the server chose an extension that was not offered")


def mask(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR the repeated 4-byte `key` (RFC 6455 §5.3)."""
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unfragmented, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_frame(code: int = NORMAL_CLOSURE, reason: bytes = b"") -> bytes:
    return client_frame(CLOSE, code.to_bytes(2, "big") + reason[:123])


def close_code(payload: bytes | bytearray) -> int | None:
    """The status code of a close frame's payload (None: none given)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


class FrameParser:
    """Cuts server frames out of a byte stream; subclasses implement `frame`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: Bytes the buffer must hold before the next frame can be complete.
        self._need = 2

    def feed(self, data: bytes | bytearray) -> None:
        """Parse what `data` completes; keep the rest for the next call."""
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return
            used = self._parse(buffer)
            del buffer[:used]
        else:
            used = self._parse(data)
            if used < len(data):
                buffer += data[used:]

    def _parse(self, b: bytes | bytearray) -> int:
        pos = 0
        n = len(b)
        while n - pos >= 2:
            b0 = b[pos]
            b1 = b[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    self._need = 4
                    return pos
                length = (b[pos + 2] << 8) | b[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    self._need = 10
                    return pos
                length = int.from_bytes(b[pos + 2 : pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                raise ProtocolError("the server sent a masked frame")
            end = start + length
            if end > n:
                self._need = end - pos
                return pos
            self.frame(b0 & 0x0F, bool(b0 & 0x80), b, start, end)
            pos = end
        self._need = 2
        return pos

    def frame(self, opcode: int, fin: bool, data: bytes | bytearray, start: int, end: int) -> None:
        """One complete frame: its payload is ``data[start:end]`` (valid during the call)."""
        raise NotImplementedError
