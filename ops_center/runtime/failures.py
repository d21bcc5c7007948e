"""How the command line reports a failure: one line on stderr, never a traceback.

`describe` turns an exception into the text of that line, with any password of a URL
(``://user:secret@``) or of a ``password=`` setting hidden by `redact`; `listen_failure`
names the address a server could not listen on, and `check_listen` finds that out before
a server starts its database (the server itself binds only once its start-up is done).
``--debug`` or ``OPS_CENTER_DEBUG=1`` (`debug_wanted`) lets the traceback through
instead, for developers.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Mapping
from typing import Final

#: Environment variable that shows tracebacks, as ``--debug`` does.
DEBUG_ENV: Final = "OPS_CENTER_DEBUG"
#: Exit status of a failure (argparse exits with 2 on usage errors; Ctrl-C gives 130).
FAILURE: Final = 1
USAGE: Final = 2
INTERRUPTED: Final = 130

_URL_PASSWORD: Final = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s@]*@")
_SETTING_PASSWORD: Final = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)")
#: Packages whose exceptions are the database's (connection refused, authentication...).
_DATABASE_PACKAGES: Final = frozenset({"psycopg", "psycopg_pool", "asyncpg"})


class CommandFailed(Exception):
    """A failure whose message is the line to print as it is (exit status 1)."""


def redact(text: str) -> str:
    """`text` with URL passwords and ``password=`` values replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _SETTING_PASSWORD.sub(r"\g<head>***", text)


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


def debug_wanted(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracebacks are shown: ``--debug``, or ``OPS_CENTER_DEBUG`` set to 1/true."""
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return flag or value.strip().lower() in ("1", "true", "yes", "on")


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_failure(exc: OSError, host: str, port: int) -> CommandFailed | None:
    """The failure to report when a server could not listen on `host`:`port`, if it is one."""
    where = address(host, port)
    if exc.errno == errno.EADDRINUSE:
        return CommandFailed(
            f"{where} is already in use (another server listens there; choose another --port)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return CommandFailed(f"cannot listen on {where}: no such address on this machine")
    if exc.errno == errno.EACCES:
        return CommandFailed(f"cannot listen on {where}: permission denied")
    return None


def check_listen(host: str, port: int) -> None:
    """Raise `CommandFailed` now if a server could not listen on `host`:`port`.

    Each address of `host` is bound (with ``SO_REUSEADDR``, as the server does) and
    released at once. Another process may still take the port before the server binds
    it; that later failure is reported the same way.
    """
    where = address(host, port)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, sockaddr in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(sockaddr)
    except OSError as exc:
        failure = listen_failure(exc, host, port)
        if failure is not None:
            raise failure from exc
        raise CommandFailed(f"cannot listen on {where}: {exc.strerror or exc}") from exc


def _is_database_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    if module.partition(".")[0] in _DATABASE_PACKAGES or module == "ops_center.store.database":
        return True
    return module.startswith("eventsourcing.") and any(
        cls.__name__ == "PersistenceError" for cls in type(exc).__mro__
    )


def describe(exc: BaseException, *, database: bool = False) -> str:
    """The one-line text for `exc`, never a password.

    Errors of the database drivers (and, when `database` says the command's only
    connections are the database's, any `OSError` such as a refused connection) are
    prefixed with ``database:``; an unexpected error also names its type and how to see
    its traceback.
    """
    if isinstance(exc, CommandFailed):
        return redact(one_line(str(exc)))
    text = str(exc)
    if type(exc).__name__ == "EmbeddedError":
        # the message goes on with the tail of the server's log: name the log instead
        text, _, tail = text.partition("\n--- tail of ")
        log = tail.partition(" ---")[0]
        if log:
            text += f" (see {log})"
    text = redact(one_line(text)) or type(exc).__name__
    if _is_database_error(exc) or (database and isinstance(exc, OSError)):
        return f"database: {text}"
    if isinstance(exc, ValueError) and type(exc).__module__ == "ops_center.store.database":
        return f"database: {text}"
    if isinstance(exc, OSError) or type(exc).__name__ == "EmbeddedError":
        return text
    return f"{text} ({type(exc).__name__}; --debug or {DEBUG_ENV}=1 shows the traceback)"
