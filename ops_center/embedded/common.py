"""What the embedded servers share: their error, free ports and the tail of a log."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Final

#: Every embedded server listens on this address only.
HOST: Final = "127.0.0.1"
#: Attempts when the port is picked by us and taken before the server binds it.
PORT_ATTEMPTS: Final = 5
_TAIL_LINES: Final = 40


class EmbeddedError(RuntimeError):
    """An embedded server failed to start or stop; the message ends with the server log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process may take it first; callers
    that bind it later should retry with a new port on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """True if 127.0.0.1:`port` can be bound now (with SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def log_tail(path: Path, *, since: int = 0, lines: int = _TAIL_LINES) -> str:
    """Last `lines` lines of the file at `path` written after byte offset `since`."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(since, size - 16384, 0)
            fh.seek(start)
            data = fh.read()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(text) if text else "(empty)"


def log_error(message: str, log_path: Path, *, since: int = 0) -> EmbeddedError:
    tail = log_tail(log_path, since=since)
    return EmbeddedError(f"{message}\n--- tail of {log_path} ---\n{tail}")
