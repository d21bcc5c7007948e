"""A minimal keep-alive HTTP/1.1 client for load generation.

The benchmark's client shares the machine (two cores) with the server and PostgreSQL, so
every microsecond it spends per request is taken from what it measures. A full client
(aiohttp's `ClientSession`) costs several times more CPU per request than writing
pre-built request bytes to a socket and reading back one response, which is all a load
generator needs.

Limits: one request at a time per `Connection` (no pipelining); responses must carry
``Content-Length`` or be chunked; no TLS, no redirects, no proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Final

#: Seconds one request may take before the benchmark gives up on the server.
REQUEST_TIMEOUT: Final = 120.0
#: Most bytes in a response's status line and headers.
MAX_HEAD: Final = 64 * 1024


class HttpError(Exception):
    """The server answered something that is not HTTP/1.1 as expected, or hung up."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


def build_request(
    method: str,
    host: str,
    port: int,
    path: str,
    *,
    token: str | None = None,
    content_type: str | None = None,
    body: bytes = b"",
) -> bytes:
    """The bytes of one HTTP/1.1 request (built once, sent as is)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; reconnects when the server asked to close."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect now (otherwise the first `send` connects)."""
        if self._writer is None:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEAD
                )
            except OSError as exc:
                raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def send(self, request: bytes) -> Reply:
        """Send one request built by `build_request` and read its response."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await self.open()
                assert self._reader is not None
                assert self._writer is not None
                self._writer.write(request)
                reply, keep_alive = await _read_reply(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"the server at {self.host}:{self.port} hung up: {exc!r}") from exc
        except TimeoutError:
            await self.close()
            raise HttpError(
                f"no answer from {self.host}:{self.port} in {REQUEST_TIMEOUT} s"
            ) from None
        if not keep_alive:
            await self.close()
        return reply

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _read_reply(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError("response headers are too large") from None
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError(f"not an HTTP/1.x response: {lines[0][:100]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            token = value.strip().lower()
            keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep_alive = False
    return Reply(status, body), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
