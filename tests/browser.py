"""Headless Chromium for tests of pages (mitmweb), driven over the Chrome DevTools Protocol.

Debian's /usr/bin/chromium (`make chromium` installs it) with a throwaway profile and
--remote-debugging-port=0; the port it chose is read from its "DevTools listening on
ws://..." line. Each page is a target of its own with its own websocket (the `websockets`
package, which litellm[proxy] already installs). Waiting is polling a JavaScript condition
in the page until a deadline, never a fixed sleep.
"""

import base64
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
from pathlib import Path

from websockets.sync.client import connect

from tests.procs import LineReader, poll_until

CHROMIUM = Path("/usr/bin/chromium")
STARTUP_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
VIEWPORT = (1440, 900)  # each page's, so screenshots come out the same on every machine


class CDPError(RuntimeError):
    pass


class Connection:
    """One DevTools websocket: commands answered in order of their ids; events are skipped."""

    def __init__(self, url: str):
        # Screenshots come back base64 in one message, well above websockets' 1 MiB default.
        self.socket = connect(url, max_size=None, open_timeout=CALL_TIMEOUT)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=CALL_TIMEOUT))
            if message.get("id") == number:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message["result"]

    def close(self) -> None:
        self.socket.close()


class Page:
    def __init__(self, connection: Connection):
        self.connection = connection

    def navigate(self, url: str) -> None:
        result = self.connection.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")

    def evaluate(self, expression: str):
        """The expression's value (JSON-able), awaited if it is a promise."""
        result = self.connection.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        """The expression's first truthy value; on timeout, the error shows what the page said."""
        try:
            return poll_until(lambda: self.evaluate(expression), timeout, what, interval=0.1)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; the page reads: {self.text()[-2000:]!r}") from None

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''")

    def screenshot(self, path: Path) -> None:
        data = self.connection.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


class Browser:
    """A headless Chromium until close(); `with browser.page(url) as page:` opens a fresh page."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.process: subprocess.Popen | None = None
        self.connection: Connection | None = None
        self.debugger = ""  # ws://127.0.0.1:PORT

    @staticmethod
    def available() -> bool:
        return os.access(CHROMIUM, os.X_OK)

    def start(self) -> "Browser":
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless=new",
                "--no-sandbox",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "--no-first-run",
                "--no-default-browser-check",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own process group: close() ends the renderers and helpers with it.
            start_new_session=True,
        )
        try:
            line = LineReader(self.process.stderr).wait_for("DevTools listening on", STARTUP_TIMEOUT)
            url = re.search(r"ws://\S+", line).group(0)
            self.debugger = re.match(r"ws://[^/]+", url).group(0)
            self.connection = Connection(url)
        except BaseException:
            self.close()
            raise
        return self

    @contextlib.contextmanager
    def page(self, url: str):
        target = self.connection.call("Target.createTarget", url="about:blank")["targetId"]
        connection = Connection(f"{self.debugger}/devtools/page/{target}")
        try:
            page = Page(connection)
            connection.call(
                "Emulation.setDeviceMetricsOverride",
                width=VIEWPORT[0],
                height=VIEWPORT[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            page.navigate(url)
            yield page
        finally:
            connection.close()
            self.connection.call("Target.closeTarget", targetId=target)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # helpers the browser left behind
