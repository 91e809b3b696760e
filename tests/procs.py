"""Real processes for tests: LiteLLM via litellm_service, mitmdump with the addons, `stabilizer run`.

Waiting is always for an observable condition (a log line, a status answer),
bounded by a deadline; never a fixed sleep.
"""

import contextlib
import itertools
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from addons.wire.logfollow import LogFollower, listening_address
from litellm_service import stack
from litellm_service.cli import stop

STARTUP_TIMEOUT = 90.0


# The tests' own listeners take ports below the kernel's ephemeral range (32768-60999 on Linux,
# 49152-65535 on macOS), from which it hands any process a port for connect() or bind(0): a port
# found free here stays free until the child listens on it, seconds later (`stabilizer run` binds
# its port after LiteLLM has started). Taken from the ephemeral range, it was once taken in that gap
# by another xdist worker's connection: mitmdump's "address already in use". Each worker has a
# block of its own, walked from a random start (another run on the machine likely starts elsewhere).
FIRST_PORT, PORT_BLOCK, PORT_BLOCKS = 20000, 1000, 12
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_block = FIRST_PORT + _worker % PORT_BLOCKS * PORT_BLOCK
_next_ports = itertools.count(random.randrange(PORT_BLOCK))


def free_port() -> int:
    """A port on 127.0.0.1 of this worker's block that nothing listens on."""
    for _ in range(PORT_BLOCK):
        port = _block + next(_next_ports) % PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_block}-{_block + PORT_BLOCK - 1}")


@contextlib.contextmanager
def listening():
    """A port on 127.0.0.1 that takes connections (the kernel completes them; nothing accepts)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def poll_until(condition, timeout: float, what: str, interval: float = 0.05):
    """Return condition()'s first truthy value; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def get_json(url: str, headers: dict | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def post_json(url: str, body, headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict, bytes]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class LiteLLM:
    """The real LiteLLM proxy started by litellm_service; restartable on a new port."""

    def __init__(self, config: Path, log_file: Path, env: dict[str, str]):
        self.config, self.log_file, self.env = config, log_file, env
        self.process: subprocess.Popen | None = None
        self.address: tuple[str, int] | None = None
        self._follower = LogFollower(str(log_file))

    def start(self) -> "LiteLLM":
        self._follower.read_lines()  # skip lines of an earlier process
        self.process = subprocess.Popen(
            stack.litellm_command(config=self.config, log_file=self.log_file, env_file=self.log_file.parent / "env"),
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

        def new_address():
            if self.process.poll() is not None:
                raise RuntimeError(f"LiteLLM exited with {self.process.returncode}; log: {self.log_file}")
            for line in self._follower.read_lines():
                if address := listening_address(line):
                    return address

        self.address = poll_until(new_address, STARTUP_TIMEOUT, "LiteLLM's 'Uvicorn running on' line")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        stop(self.process)
        self._follower.close()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"


class Mitmdump:
    """The real mitmdump with the real addon bundle, following a LiteLLM log."""

    def __init__(
        self,
        litellm_log: Path,
        policy: Path | None,
        env: dict[str, str],
        tool: str = "mitmdump",
        litellm_config: Path | None = None,
    ):
        self.port = free_port()
        self.command = stack.mitmdump_command(
            host="127.0.0.1",
            port=self.port,
            litellm_log=litellm_log,
            policy=policy,
            tool=tool,
            litellm_config=litellm_config,
            web_port=free_port(),
        )
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> dict | None:
        try:
            return get_json(self.url + "/_stabilizer/status")[1]
        except OSError:
            return None

    def start(self, extra_args: tuple[str, ...] = (), quiet: bool = True) -> "Mitmdump":
        """`quiet`: -q, without the flow lines and the addons' INFO lines (-q outranks any --set)."""
        self.log = open(Path(self.env["HOME"]) / f"mitmdump-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [*self.command, *(["-q"] if quiet else []), *extra_args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def answering():
            if self.process.poll() is not None:
                raise RuntimeError(f"mitmdump exited with {self.process.returncode}; log: {self.log.name}")
            return self.status()

        poll_until(answering, STARTUP_TIMEOUT, "mitmdump's status endpoint")
        return self

    def wait_upstream(self, url: str, timeout: float = 5.0) -> None:
        poll_until(lambda: (self.status() or {}).get("upstream") == url, timeout, f"upstream {url}")

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


class StabilizerRun:
    """`stabilizer run` on a free port, as a user starts it, until stop() (SIGINT, like Ctrl-C)."""

    def __init__(
        self,
        folder: Path,
        *,
        litellm_config: Path | None,
        policy: Path,
        env: dict[str, str],
        record: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.folder = folder
        self.command = [
            str(Path(sys.executable).parent / "stabilizer"),
            "run",
            "--port",
            str(self.port),
            "--log-dir",
            str(folder / "logs"),
            *(["--litellm-config", str(litellm_config)] if litellm_config is not None else []),
            "--env-file",
            str(folder / "env"),
            "--policy",
            str(policy),
            *(["--record", str(record)] if record is not None else []),
            "-q",
            *extra_args,
        ]
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StabilizerRun":
        self.stdout = (self.folder / "stdout.log").open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=subprocess.PIPE
        )
        # Kept: what it prints after "ready on" (with --web, the mitmweb address) is read from it.
        self.stderr = LineReader(self.process.stderr)
        try:
            self.stderr.wait_for("ready on", timeout=STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)
        self.stdout.close()


class LineReader:
    """Lines of a child's stream, readable with a deadline."""

    def __init__(self, stream):
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in iter(stream.readline, b""):
            self.lines.put(line.decode(errors="replace"))
        stream.close()

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise TimeoutError(f"no line containing {needle!r} within {timeout:.0f} s; saw: {''.join(self.seen)[-2000:]}")


def running_line(url: str) -> bytes:
    """The line uvicorn prints when LiteLLM is up, as the Upstream addon reads it."""
    return f"INFO:     Uvicorn running on {url} (Press CTRL+C to quit)\n".encode()


def child_environment(home: Path, master_key: str) -> dict[str, str]:
    """A clean environment for child processes: throwaway HOME, the master key, offline LiteLLM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "LITELLM_", "OPENAI_"))}
    env.update(HOME=str(home), LITELLM_MASTER_KEY=master_key, PYTHONUNBUFFERED="1", NO_PROXY="*")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
