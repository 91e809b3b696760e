"""The three ways a request can go in a benchmark, each a real process on loopback.

(a) direct: the stand-in upstream (tests/bench/upstream.py), alone;
(b) stock:  mitmdump in reverse mode in front of it, no addons;
(b') stock streaming: the same with tests/bench/stream_only.py, which streams
    event streams as the bundle must (a reference for the throughput section);
(c) bundle: mitmdump with addons/stabilizer_addons.py, the real policy file,
    the master key, and the upstream learned from a LiteLLM log file;
(r) before (`--against REV`): the same bundle command with the addons as
    they were at a git revision, checked out by `git worktree`.

(b) and (c) run with the same options (`-q`, connection_strategy=lazy), so
the difference between them is the addons.
"""

import os
import platform
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import BinaryIO

import yaml

from litellm_service import stack
from tests.procs import Mitmdump, child_environment, free_port, poll_until, running_line

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
POLICY = PROJECT_ROOT / "config" / "stabilizer.yaml"
START_TIMEOUT = 60.0
# A model with a window that holds the 2 MB session (about 450K tokens), so the
# bundle's cost on it can be measured without trimming; every other model
# name gets the shipped policy (qwen-plus and the defaults have a 128K window:
# the 2 MB session is trimmed). Not deepseek-flash: its thinking section adds
# work of its own, which the latency table measures in a row of its own.
LONG_WINDOW_MODEL = "bench-1m-window"
LONG_WINDOW_TOKENS = 1 << 20


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads (Linux: ns from schedstat, else clock ticks)."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*/schedstat"))
    if tasks:
        return sum(int(task.read_text().split()[0]) for task in tasks) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_policy(folder: Path, checkout: Path = PROJECT_ROOT) -> Path:
    """The policy `checkout` ships plus the long-window model, as mitmdump reads it (a bundle of
    another commit refuses keys added after it)."""
    policy = yaml.safe_load((checkout / POLICY.relative_to(PROJECT_ROOT)).read_text())
    policy["models"][LONG_WINDOW_MODEL] = {"context_window": LONG_WINDOW_TOKENS}
    path = folder / "stabilizer.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class StandIn:
    """A stand-in server of this package (`python -m <module> --port 0`), started and listening
    once it printed `listening on URL ...`; its errors in `<log_name>`."""

    def __init__(self, folder: Path, module: str, log_name: str, what: str):
        self.log = open(folder / log_name, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"{what} did not start: {line!r}; see {self.log.name}")
        self.words = line.split()
        self.url = self.words[2]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        _stop(self.process)
        self.log.close()


class UpstreamProcess(StandIn):
    def __init__(self, folder: Path):
        super().__init__(folder, "tests.bench.upstream", "upstream.log", "the stand-in upstream")
        # listening on http://127.0.0.1:PORT acks udp:ACKPORT
        self.ack_port = int(self.words[-1].rsplit(":", 1)[1])


STREAM_ONLY = Path(__file__).resolve().parent / "stream_only.py"


class ListeningProcess:
    """A child process that serves on `self.port`, its output in `self.log`."""

    process: subprocess.Popen
    log: BinaryIO
    port: int

    def wait_listening(self, what: str) -> None:
        def up():
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.process.returncode}; see {self.log.name}")
            return _listening(self.port)

        poll_until(up, START_TIMEOUT, f"{what} to listen")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        _stop(self.process)
        self.log.close()


class StockMitmdump(ListeningProcess):
    def __init__(self, folder: Path, upstream_url: str, *, streaming: bool = False):
        self.port = free_port()
        self.log = open(folder / f"stock-mitmdump-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [
                stack.venv_tool("mitmdump"),
                "-q",
                "--mode",
                f"reverse:{upstream_url}",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(self.port),
                "--set",
                "connection_strategy=lazy",
                *(("-s", str(STREAM_ONLY)) if streaming else ()),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        self.wait_listening("stock mitmdump")


class Bundle:
    """mitmdump (or mitmweb) with the addons (tests/procs.Mitmdump), routed to the stand-in upstream.

    `checkout`: the project folder whose addons run (another one than this: an earlier revision's).
    """

    def __init__(
        self,
        folder: Path,
        upstream_url: str,
        master_key: str,
        tool: str = "mitmdump",
        checkout: Path = PROJECT_ROOT,
    ):
        home = folder / "home"
        home.mkdir(exist_ok=True)
        litellm_log = folder / "litellm.log"
        litellm_log.write_bytes(running_line(upstream_url))
        policy = write_policy(folder, checkout)
        self.mitmdump = Mitmdump(litellm_log, policy, child_environment(home, master_key), tool=tool)
        if checkout != PROJECT_ROOT:
            _run_addons_of(self.mitmdump, checkout)
        self.mitmdump.start()
        self.mitmdump.wait_upstream(upstream_url, timeout=START_TIMEOUT)
        self.port = self.mitmdump.port

    @property
    def pid(self) -> int:
        return self.mitmdump.process.pid

    def stop(self) -> None:
        self.mitmdump.stop()


def _run_addons_of(mitmdump: Mitmdump, checkout: Path) -> None:
    """The same command with every file of this project's addons taken from `checkout` instead."""
    ours = PROJECT_ROOT / "addons"
    mitmdump.command = [
        str(checkout / "addons" / Path(arg).relative_to(ours)) if Path(arg).is_relative_to(ours) else arg
        for arg in mitmdump.command
    ]
    # The venv's editable install points at this working tree: without the checkout first on
    # the path, its entry file would import this tree's modules.
    mitmdump.env["PYTHONPATH"] = str(checkout)


def commit_of(revision: str) -> str | None:
    """The commit a git revision names in this repository, or None."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else None


class BundleAt(Bundle):
    """The bundle as it was at a commit: a `git worktree` of it in `folder`, removed by stop()."""

    def __init__(self, folder: Path, upstream_url: str, master_key: str, commit: str):
        self.checkout = folder / "source"
        _git("worktree", "add", "--detach", str(self.checkout), commit)
        try:
            super().__init__(folder, upstream_url, master_key, checkout=self.checkout)
        except BaseException:
            self._remove_checkout()
            raise

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._remove_checkout()

    def _remove_checkout(self) -> None:
        _git("worktree", "remove", "--force", str(self.checkout))


def _git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=PROJECT_ROOT, check=True, capture_output=True)


def start_py_spy(pid: int, rate: int, output: Path) -> subprocess.Popen:
    """py-spy recording process `pid` (all its threads, `rate` samples a second) until stop_py_spy."""
    return subprocess.Popen(
        [
            stack.venv_tool("py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(profiler: subprocess.Popen) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes the flame graph when interrupted
    profiler.wait(60)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Routes:
    """Ports of (a), (b), (c) and (r) if asked for, and the processes behind them."""

    upstream: UpstreamProcess
    stock: StockMitmdump
    stock_streaming: StockMitmdump
    bundle: Bundle
    before: BundleAt | None = None
    # (r) started before (c), and listed before it (swap_bundles)
    before_first: bool = False

    @property
    def ports(self) -> dict[str, int]:
        ports = {"direct": self.upstream.port, "stock": self.stock.port, "stock streaming": self.stock_streaming.port}
        bundles = {"bundle": self.bundle.port, **({"before": self.before.port} if self.before else {})}
        return ports | dict(reversed(bundles.items()) if self.before_first else bundles.items())

    @property
    def proxy_pids(self) -> dict[str, int]:
        pids = {"stock": self.stock.pid, "bundle": self.bundle.pid}
        if self.before:
            pids["before"] = self.before.pid
        return pids

    def swap_bundles(self, folder: Path, master_key: str, commit: str) -> None:
        """Stop both bundles and start them again in `folder`, (r) first this time.

        The same code measures slower the earlier its mitmdump was started (docs/benchmarks.md):
        half the rounds in each order give neither bundle the place."""
        self.bundle.stop()
        if self.before:
            self.before.stop()
        (folder / "before").mkdir(parents=True)
        self.before = BundleAt(folder / "before", self.upstream.url, master_key, commit)
        self.bundle = Bundle(folder, self.upstream.url, master_key)
        self.before_first = True

    def stop(self) -> None:
        for server in (self.before, self.bundle, self.stock_streaming, self.stock, self.upstream):
            if server:
                server.stop()


def start_routes(folder: Path, master_key: str, against: str | None = None) -> Routes:
    """The routes; with `against` (a commit), the bundle as it was there too, in folder/before."""
    started = [UpstreamProcess(folder)]
    try:
        url = started[0].url
        started.append(StockMitmdump(folder, url))
        started.append(StockMitmdump(folder, url, streaming=True))
        started.append(Bundle(folder, url, master_key))
        if against:
            (folder / "before").mkdir()
            started.append(BundleAt(folder / "before", url, master_key, against))
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return Routes(*started)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mitmproxy": version("mitmproxy"),
        "tiktoken": version("tiktoken"),
    }
