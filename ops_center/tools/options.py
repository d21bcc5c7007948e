"""The options of the client sub-commands (``simulate``, ``watch``): ``--url`` and ``--key``.

Every command that talks to a running server names it the same way: ``--url`` is the
server's ``http(s)://host:port`` address (a path prefix is kept, for a server behind a
reverse proxy), ``--key`` the API key sent as ``Authorization: Bearer``. A command that
needs another address derives it: `websocket_url` turns the server's address into its
``/ws`` endpoint. Older spellings stay accepted as aliases (``watch --token``, and a
``ws://``/``wss://`` URL given to ``watch --url`` is used as it is).
"""

from __future__ import annotations

import argparse
from typing import Final
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL: Final = "http://127.0.0.1:8080"
#: Environment variable holding the key of ``watch`` when ``--key`` is not given.
KEY_ENV: Final = "OPS_CENTER_TOKEN"

_HTTP: Final = ("http", "https")
_WEBSOCKET: Final = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def _checked(text: str, schemes: tuple[str, ...] | dict[str, str]) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server address (http(s)://host:port, e.g. {DEFAULT_URL})"
        )
    return urlunsplit(parts._replace(scheme=parts.scheme.lower())).rstrip("/")


def server_url(text: str) -> str:
    """An ``http(s)://`` server address (an argparse type): without a trailing slash."""
    return _checked(text, _HTTP)


def watch_url(text: str) -> str:
    """An argparse type: the server's ``http(s)://`` address, or a ``ws(s)://`` URL."""
    return _checked(text, _WEBSOCKET)


def websocket_url(url: str) -> str:
    """The WebSocket endpoint of the server at `url`.

    ``http://h:p`` gives ``ws://h:p/ws``, ``https://h/prefix`` gives ``wss://h/prefix/ws``;
    a ``ws://`` or ``wss://`` URL is returned as it is (the old form of ``watch --url``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        return url
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((_WEBSOCKET[scheme], parts.netloc, path, parts.query, ""))


def add_url_option(
    parser: argparse.ArgumentParser, *, required: bool = False, websocket: bool = False
) -> None:
    """``--url``: the server's address (``websocket``: a ws(s):// URL is accepted too)."""
    default_help = "required" if required else f"default {DEFAULT_URL}"
    old = "; a ws:// or wss:// URL of /ws is accepted as given" if websocket else ""
    parser.add_argument(
        "--url",
        type=watch_url if websocket else server_url,
        required=required,
        default=None if required else DEFAULT_URL,
        metavar="URL",
        help=f"the server's http(s) address, e.g. {DEFAULT_URL} ({default_help}{old})",
    )


def add_key_option(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    required: bool = False,
    env: bool = False,
    aliases: tuple[str, ...] = (),
) -> None:
    """``--key``: the API key (`aliases`: older spellings, shown as such in --help)."""
    notes = []
    if env:
        notes.append(f"default: ${KEY_ENV}")
    if aliases:
        notes.append(f"{', '.join(aliases)}: old spelling of --key")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    parser.add_argument(
        "--key",
        *aliases,
        dest="key",
        required=required,
        metavar="KEY",
        help=f"{what}{suffix}",
    )
