"""Headless Chromium driven over the Chrome DevTools protocol, for tests of the HTML report.

It runs the system's ``chromium`` (Debian's package; nothing is downloaded) with a
fresh profile and no background networking, and speaks the protocol over a
WebSocket (``websocket-client``). A :class:`Page` collects console errors and
uncaught exceptions so that a test can assert there were none.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1400,1000",
]


def find_chromium() -> str | None:
    """The Chromium executable on this machine, or ``None``."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab (or, with ``enable=False``, the browser itself): navigate, evaluate JavaScript,
    take screenshots; console errors are kept."""

    def __init__(self, ws_url: str, enable: bool = True) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._id = 0
        self.console_errors: list[str] = []
        if enable:
            for domain in ("Runtime", "Log", "Page"):
                self.send(f"{domain}.enable")

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console_errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console_errors.append(params["entry"]["text"])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result, recording events that arrive meanwhile."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting a promise) and return its value."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float = 60) -> None:
        """Load ``url`` and wait until ``ready`` is true."""
        self.send("Page.navigate", url=url)
        self.wait_for(ready, timeout)

    def wait_for(self, condition: str, timeout: float = 30) -> None:
        """Wait until a JavaScript condition is true."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(condition)
            time.sleep(0.05)

    def drain(self, seconds: float = 0.3) -> None:
        """Read events for a moment (console messages that came after the last command)."""
        self.ws.settimeout(seconds)
        try:
            while True:
                self._event(json.loads(self.ws.recv()))
        except Exception:  # the timeout ends the wait
            pass
        finally:
            self.ws.settimeout(60)

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        """Save a PNG screenshot of the viewport (or the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params |= {"captureBeyondViewport": True, "clip": clip}
        result = self.send("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(result["data"]))

    def close(self) -> None:
        """Close the connection to the tab."""
        self.ws.close()


class Chromium:
    """A headless Chromium process with a fresh profile, stopped by :meth:`stop`."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="dam-dedupe-chromium-")
        self._browser: Page | None = None
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("Chromium did not start")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def new_page(self) -> Page:
        """Open a new blank tab."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        return Page(target["webSocketDebuggerUrl"])

    def allow_downloads(self, folder: Path) -> None:
        """Save downloads (a report's exported decisions) into ``folder`` without asking.

        The setting lasts while the browser-level connection it is made on stays open, so
        that connection is kept until :meth:`stop`.
        """
        if self._browser is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=30) as response:
                self._browser = Page(json.loads(response.read())["webSocketDebuggerUrl"], enable=False)
        self._browser.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def stop(self) -> None:
        """Stop the browser and remove its profile."""
        if self._browser is not None:
            self._browser.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """A headless Chromium for the session; the test is skipped where none is installed."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    browser = Chromium(executable)
    yield browser
    browser.stop()
