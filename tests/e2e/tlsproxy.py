"""A TLS front for a PostgreSQL server without TLS, for tests of the clients' TLS settings.

The embedded PostgreSQL build has no TLS. `TlsFront` listens on 127.0.0.1 and speaks the
start of PostgreSQL's protocol itself: it answers a client's ``SSLRequest`` with ``S`` and
a real TLS handshake (a certificate made with ``openssl`` by `self_signed`), refuses GSS
encryption, records for every connection whether it used TLS and the parameters of its
startup message (``user``, ``database``, ``application_name``, ...), then relays bytes to
the real server in plain text. To a client it is a PostgreSQL server that offers TLS.

It runs its own event loop in a thread, so synchronous clients (psycopg) and the test's
own loop can use it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def self_signed(folder: Path, name: str = "ops-center-test") -> tuple[Path, Path]:
    """A new self-signed certificate and its key in `folder` (``openssl req -x509``)."""
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass(frozen=True, slots=True)
class Seen:
    """One client connection: whether it used TLS, and its startup parameters."""

    tls: bool
    params: dict[str, str]


class TlsFront:
    """See the module docstring. `port` once started; `seen` lists the connections."""

    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        self.backend_port = backend_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.seen: list[Seen] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TlsFront:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def tagged(self, application_name: str) -> list[Seen]:
        return [s for s in self.seen if s.params.get("application_name") == application_name]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            tls = False
            while True:
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                if code == SSL_REQUEST and not tls:
                    writer.write(b"S")
                    await writer.drain()
                    await writer.start_tls(self.context)
                    tls = True
                    continue
                if code == GSSENC_REQUEST:
                    writer.write(b"N")
                    await writer.drain()
                    continue
                body = await reader.readexactly(length - 8)
                break
            if code != CANCEL_REQUEST:
                fields = body.split(b"\x00")
                pairs = dict(zip(fields[0::2], fields[1::2], strict=False))
                params = {k.decode(): v.decode() for k, v in pairs.items() if k}
                self.seen.append(Seen(tls, params))
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
            up_writer.write(struct.pack("!ii", length, code) + body)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
