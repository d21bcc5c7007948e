"""``ops-center watch TOPIC``: a live terminal view of a stream, on the websockets client.

``--url`` is the server's http(s) address (the ``/ws`` endpoint is derived from it, see
`ops_center.tools.options.websocket_url`), ``--key`` a viewer key (or
``$OPS_CENTER_TOKEN``); ``--token`` and a ``ws(s)://`` URL are the older spellings.

It subscribes to one topic (optionally one unit), applies snapshots and deltas with
`streams.client.Screen` and redraws the state after every frame: the overview and the
services statistics as indented figures, the other topics as their latest items. When
the connection drops it reconnects with ``since`` (so the server replays what was missed,
or sends a fresh snapshot), waiting a little longer after each failure. Error frames are
printed as they come. Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ops_center.runtime.backoff import Backoff
from ops_center.tools.options import KEY_ENV, add_key_option, add_url_option, websocket_url
from streams import topics
from streams.client import Screen

#: Items shown for the list topics.
SHOWN_ITEMS: Final = 20
#: First and largest pause before reconnecting, in seconds.
MIN_RETRY: Final = 0.5
MAX_RETRY: Final = 10.0
#: Largest frame accepted from the server (a devices snapshot of a whole province).
MAX_FRAME: Final = 64 * 1024 * 1024

_ITEM_LABELS: Final[dict[str, Callable[[dict[str, Any]], str]]] = {
    "devices": lambda i: f"{i['kind']:<6} {i['code']:<24} {i.get('status') or '-':<9} {i['unit']}",
    "kpis": lambda i: (
        f"{i['code']:<24} {i['status']:<10} "
        f"{(i.get('latest') or {}).get('value', '-')!s:>8} / {i['target']} {i['measure']}"
    ),
    "feed": lambda i: f"{i['position']:>9} {i['time']} {i['type']:<28} {i.get('subject') or ''}",
    "alarms": lambda i: " ".join(f"{k}={v}" for k, v in i.items()),
    "reports": lambda i: (
        f"{i['code']:<24} {i['state']:<9} {i['category']:<14} {i['unit']:<12} "
        f"{i.get('agency') or '-':<12} due {i.get('due_at') or '-'}"
    ),
}


def render(topic: str, state: dict[str, Any], position: int) -> str:
    """The state of a topic as text."""
    lines = [f"{topic} at position {position}"]
    if topics.TOPICS[topic].delta == "merge":
        lines.extend(_figures(state, indent=1))
    else:
        items = state.get("items", [])
        label = _ITEM_LABELS[topic]
        lines.append(f"  {len(items)} item(s)")
        lines.extend(f"  {label(item)}" for item in items[:SHOWN_ITEMS])
        if len(items) > SHOWN_ITEMS:
            lines.append(f"  ... {len(items) - SHOWN_ITEMS} more")
    return "\n".join(lines)


def _figures(value: dict[str, Any], indent: int) -> list[str]:
    lines = []
    pad = "  " * indent
    for name, item in value.items():
        if name == "position":
            continue
        if isinstance(item, dict):
            lines.append(f"{pad}{name}:")
            lines.extend(_figures(item, indent + 1))
        elif isinstance(item, list):
            lines.append(f"{pad}{name}: {len(item)} entries")
        else:
            lines.append(f"{pad}{name}: {item}")
    return lines


class Watcher:
    """Follows one subscription, reconnecting with ``since``; writes to `out`."""

    def __init__(
        self, url: str, key: str, topic: str, unit: str | None, out: TextIO, *, clear: bool
    ) -> None:
        self.url = url
        self.key = key
        self.topic = topic
        self.unit = unit
        self.out = out
        self.clear = clear
        self.screen = Screen()

    def subscription(self) -> bytes:
        message: dict[str, Any] = {"op": "subscribe", "topic": self.topic}
        if self.unit is not None:
            message["unit"] = self.unit
        if self.topic in self.screen.positions:
            message["since"] = self.screen.positions[self.topic]
        return orjson.dumps(message)

    def show(self, frame: dict[str, Any]) -> None:
        if frame["op"] == "error":
            print(f"! {frame.get('code')}: {frame.get('detail')}", file=self.out, flush=True)
            return
        text = render(self.topic, self.screen.states[self.topic], frame["position"])
        if self.clear:
            text = "\x1b[H\x1b[2J" + text
        print(text, file=self.out, flush=True)

    async def follow(self, ws: ClientConnection) -> None:
        await ws.send(self.subscription().decode())
        async for raw in ws:
            frame = orjson.loads(raw)
            self.screen.handle(frame)
            self.show(frame)

    async def run(self) -> int:
        retry = Backoff(MIN_RETRY, MAX_RETRY)
        headers = {"Authorization": f"Bearer {self.key}"}
        while True:
            try:
                async with connect(
                    self.url, additional_headers=headers, max_size=MAX_FRAME, open_timeout=10
                ) as ws:
                    retry.reset()
                    await self.follow(ws)
            except InvalidStatus as exc:
                status = exc.response.status_code
                print(f"ops-center watch: {self.url} refused ({status})", file=sys.stderr)
                if status in (401, 403):
                    return 1
            except (OSError, TimeoutError, WebSocketException) as exc:
                print(f"ops-center watch: disconnected ({exc}); retrying", file=sys.stderr)
            await retry.sleep()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", choices=list(topics.TOPICS), help="the topic to follow")
    add_url_option(parser, websocket=True)
    add_key_option(parser, "a viewer key", env=True, aliases=("--token",))
    parser.add_argument("--unit", help="a unit's code: only that unit and the units below it")
    parser.add_argument(
        "--no-clear", action="store_true", help="append each state instead of redrawing"
    )


def main(args: argparse.Namespace) -> int:
    """Follow the topic until Ctrl-C; 2 without a key, 1 when the key is refused."""
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        print(f"ops-center watch: give a key with --key or ${KEY_ENV}", file=sys.stderr)
        return 2
    clear = not args.no_clear and sys.stdout.isatty()
    url = websocket_url(args.url)
    watcher = Watcher(url, key, args.topic, args.unit, sys.stdout, clear=clear)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(watcher.run())
    return 0
