"""A small Chrome DevTools Protocol client: headless Chromium driven over `websockets`.

`Chromium.launch()` starts ``chromium --headless=new --remote-debugging-port=0`` with a
fresh profile in a temporary folder and connects to the browser's DevTools endpoint (its
port is read from the ``DevToolsActivePort`` file Chromium writes there). `new_page()`
opens a tab in its own browser context (its own storage), attached in flat mode: every
command of the page carries its session id over the one connection.

Used by the page's end-to-end test and by ``tests/e2e/screenshot.py``; no dependency
beyond the project's own (``websockets``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

#: Where Chromium is looked for, in order (``CHROMIUM`` may name another binary).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = (
    "--headless=new",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-color-profile=srgb",
    "--lang=vi-VN",
)


class CdpError(RuntimeError):
    """A command answered with an error, or a page script threw."""


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).exists() else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """A running headless Chromium and the DevTools connection to it."""

    def __init__(
        self, process: asyncio.subprocess.Process, folder: Path, ws: ClientConnection
    ) -> None:
        self.process = process
        self.folder = folder
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reader = asyncio.create_task(self._read(), name="cdp:reader")

    @classmethod
    async def launch(cls, executable: str | None = None, *, within: float = 30.0) -> Chromium:
        """Start Chromium and connect; RuntimeError when it does not come up in time."""
        binary = executable or find_chromium()
        if binary is None:
            raise FileNotFoundError("no Chromium binary found (apt-get install chromium)")
        folder = Path(tempfile.mkdtemp(prefix="ops-center-chromium-"))
        args = [*FLAGS, f"--user-data-dir={folder}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to sandbox as root
        log = (folder / "chromium.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            binary, *args, "about:blank", stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
        )
        log.close()
        port_file = folder / "DevToolsActivePort"
        deadline = time.monotonic() + within
        try:
            while True:
                if port_file.exists():
                    lines = port_file.read_text().split()
                    if len(lines) >= 2:
                        break
                if process.returncode is not None or time.monotonic() > deadline:
                    output = (folder / "chromium.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"Chromium did not start: {output}")
                await asyncio.sleep(0.05)
            url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            ws = await connect(url, max_size=None, ping_interval=None, open_timeout=within)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(process, folder, ws)

    async def _read(self) -> None:
        async for raw in self.ws:
            message = orjson.loads(raw)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                for listener in list(self._listeners):
                    listener(message)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Run one command; its result (CdpError when it failed)."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self.ws.send(orjson.dumps(message).decode())
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self, width: int = 1920, height: int = 1080) -> Page:
        """A blank tab of `width` x `height` CSS pixels in a fresh browser context."""
        context = (await self.send("Target.createBrowserContext"))["browserContextId"]
        target = await self.send(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": context, "width": width, "height": height},
        )
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"], target["targetId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    async def close(self) -> None:
        """Close the connection, stop Chromium and remove its profile."""
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, take screenshots.

    Uncaught exceptions and ``console.error`` calls of the page are kept in `errors`.
    """

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.errors: list[str] = []
        self._loaded = asyncio.Event()
        browser._listeners.append(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("sessionId") != self.session:
            return
        method = message.get("method")
        params = message.get("params", {})
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.errors.append(exception.get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append(" ".join(texts))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def goto(self, url: str, within: float = 15.0) -> None:
        """Navigate and wait for the load event."""
        self._loaded.clear()
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {answer['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), within)

    async def reload(self, within: float = 15.0) -> None:
        self._loaded.clear()
        await self.send("Page.reload", {"ignoreCache": True})
        await asyncio.wait_for(self._loaded.wait(), within)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); CdpError if it threw."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, within: float = 10.0, every: float = 0.05) -> Any:
        """Evaluate `expression` until it is truthy; its value (TimeoutError with the last
        value otherwise)."""
        deadline = time.monotonic() + within
        value: Any = None
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {within} s")
            await asyncio.sleep(every)

    async def screenshot(self, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page (`full_page`)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        answer = await self.send("Page.captureScreenshot", params)
        return base64.b64decode(answer["data"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.browser.send("Target.closeTarget", {"targetId": self.target})
        with contextlib.suppress(ValueError):
            self.browser._listeners.remove(self._on_event)
