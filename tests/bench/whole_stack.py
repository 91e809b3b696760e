"""7. The whole stack against what a user would run instead, on one stand-in provider.

The ways to the same stand-in backend (tests/bench/provider_upstream.py: an
OpenAI-compatible and an Anthropic-compatible API, as DeepSeek, Qwen, Kimi,
GLM, Ollama and vLLM serve both; it writes with TCP_NODELAY), each a real
process on loopback:

- direct: the stand-in itself (its Chat Completions stream; the reference
  every "added" figure is taken against);
- litellm: the LiteLLM proxy alone, started by litellm_service with the
  shipped config/litellm.yaml settings and one `openai/` model entry for the
  stand-in (LiteLLM translates Anthropic Messages to Chat Completions);
- stock: stock mitmdump in front of that LiteLLM, streaming event streams
  (tests/bench/stream_only.py: stock mitmdump would otherwise buffer a whole
  stream, and its time to first byte would be its time to the last event);
- stack: the stabilizer, mitmdump with the addons following that LiteLLM's
  log, as `stabilizer run` starts it;
- ccr: claude-code-router (npm, pinned: CCR_VERSION), installed into
  .cache/ccr/<version>/ by this benchmark, with its default settings and one
  provider for the stand-in's Chat Completions;
- litellm-anthropic and stack-anthropic: the same LiteLLM, alone and behind
  the stabilizer, with an `anthropic/` model entry for the stand-in's
  Anthropic-compatible API, as config/litellm.yaml offers for each provider
  that has one (LiteLLM passes the Messages stream on instead of translating).

Requests: a small one (one user line) and the two recorded Claude Code
requests (tests/data/: the 76 KB first request and the request after a tool
round trip), all streamed. Each way keeps one
connection alive and the ways take turns request by request, in an order
shuffled per request (stats.shuffled_orders: LiteLLM's work after a stream
falls on whichever way comes next). Per round and way: the p50 of time to first byte (request written to
the first byte of the answer), time to the last event (the last chunk of the
stream, `message_stop`), and the time between the two, on a stream of 10 text
deltas that the backend writes back to back; when the request reached the
backend (the first delta's stamp: the part of the time to first byte spent
on the way in); and LiteLLM's own
`x-litellm-overhead-duration-ms` header where it answers. Then streams with a
gap between the deltas: each delta carries the backend's send time, so its
delay is arrival - sent (p50 and p99), whichever proxy translated it.
Figures: median of the rounds and half their spread.

Issue 20's targets, per request, for the stabilizer on each route: its added
time to first byte within TTFB_OVER_CCR_MS of claude-code-router's; its time
after the first byte at most AFTER_OVER_CCR_MS above claude-code-router's for
the same events.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests import workload
from tests.bench.servers import (
    PROJECT_ROOT,
    START_TIMEOUT,
    ListeningProcess,
    StandIn,
    StockMitmdump,
    start_py_spy,
    stop_py_spy,
)
from tests.bench.stats import Figure, percentile, shuffled_orders
from tests.procs import LiteLLM, Mitmdump, child_environment, free_port

WAYS = ("direct", "litellm", "stock", "stack", "ccr", "litellm-anthropic", "stack-anthropic")
LABELS = {
    "direct": "backend direct",
    "litellm": "LiteLLM alone (openai/)",
    "stock": "stock mitmdump + LiteLLM (openai/)",
    "stack": "stabilizer: mitmdump + addons + LiteLLM (openai/)",
    "ccr": "claude-code-router",
    "litellm-anthropic": "LiteLLM alone (anthropic/)",
    "stack-anthropic": "stabilizer (anthropic/)",
}
LITELLM_WAYS = ("litellm", "stock", "stack", "litellm-anthropic", "stack-anthropic")
# The stabilizer on each of LiteLLM's routes, held against claude-code-router.
STACKS = ("stack", "stack-anthropic")
MODEL = "bench-model"
ANTHROPIC_MODEL = "bench-model-anthropic"
ANTHROPIC_PATH = "/v1/messages?beta=true"
OPENAI_PATH = "/v1/chat/completions"
OVERHEAD_HEADER = "x-litellm-overhead-duration-ms"
POLICY = PROJECT_ROOT / "config" / "stabilizer.yaml"
LITELLM_CONFIG = PROJECT_ROOT / "config" / "litellm.yaml"
# claude-code-router on npm (read 2026-11-26): 3.1.1 is the latest, but it depends on
# @the-next-ai/ai-gateway, which the npm registry answers 404 for, so it cannot be installed;
# 2.0.0 (2026-08-04) is the newest that installs, one self-contained bundle (dist/cli.js).
CCR_PACKAGE = "@musistudio/claude-code-router"
CCR_VERSION = "2.0.0"
CCR_DIR = PROJECT_ROOT / ".cache" / "ccr" / CCR_VERSION
INSTANT_DELTAS = 10
# Issue 20's targets.
TTFB_OVER_CCR_MS = 5.0
AFTER_OVER_CCR_MS = 2.0
_STAMP = re.compile(rb"t(\d+)\.(\d+) ")


@dataclass
class Settings:
    rounds: int = 3
    requests: int = 40  # per round, way and request
    gap_deltas: int = 50  # text deltas of a gapped stream
    gap_ms: float = 10.0
    gap_streams: int = 2  # per round and way


@dataclass
class Timed:
    status: int
    headers: dict[str, str]
    started_ns: int  # when the request was written
    first_byte_ms: float
    last_event_ms: float
    # (seq, sent ns, arrived ns) of each stamped text delta
    stamps: list[tuple[int, int, int]]
    body: bytes


class Connection:
    """One kept-alive HTTP/1.1 connection that times a streamed answer: its first byte, its last
    chunk, and the arrival of every stamped text delta (time.monotonic_ns, the stand-in's clock)."""

    def __init__(self, port: int):
        self.port = port

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        return self

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Timed:
        lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()] + [f"content-length: {len(body)}"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if self.reader.at_eof():  # closed by the server while idle (uvicorn: after 5 s), as a client reopens it
            await self.close()
            await self.open()
        reader = self.reader
        start = time.monotonic_ns()
        self.writer.writelines((head, body))
        first = await asyncio.wait_for(reader.readexactly(1), 60)
        first_at = time.monotonic_ns()
        raw = first + await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        response_headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        stamps: list[tuple[int, int, int]] = []
        parts: list[bytes] = []
        last_at = first_at
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            pending = b""
            while True:
                size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 60)).split(b";", 1)[0], 16)
                data = (await reader.readexactly(size + 2))[:-2]
                if size == 0:
                    break
                last_at = time.monotonic_ns()
                parts.append(data)
                pending += data
                *complete, pending = pending.split(b"\n\n")
                for event in complete:
                    stamps += [(int(seq), int(sent), last_at) for seq, sent in _STAMP.findall(event)]
        else:
            parts.append(await reader.readexactly(int(response_headers.get("content-length", 0))))
            last_at = time.monotonic_ns()
        return Timed(
            int(status_line.split(" ", 2)[1]),
            response_headers,
            start,
            (first_at - start) / 1e6,
            (last_at - start) / 1e6,
            stamps,
            b"".join(parts),
        )


def requests() -> list[tuple[str, dict[str, bytes]]]:
    """(name, body for each way): the same request, with the model name of the way's route."""
    small = {
        "model": MODEL,
        "max_tokens": 1024,
        "stream": True,
        "messages": [{"role": "user", "content": "Say hi in one word."}],
    }
    cases = []
    for name, request in (
        ("small request", small),
        ("recorded Claude Code request", workload.recorded()),
        ("recorded tool round trip", workload.roundtrip()),
    ):
        bodies = {
            way: workload.encode({**request, "model": ANTHROPIC_MODEL if way.endswith("-anthropic") else MODEL})
            for way in WAYS
        }
        size = len(bodies["stack"])
        cases.append((f"{name} ({size} B)" if size < 1000 else f"{name} ({size / 1000:.0f} KB)", bodies))
    return cases


# --- the processes -------------------------------------------------------------------------------


class Backend(StandIn):
    def __init__(self, folder: Path):
        super().__init__(folder, "tests.bench.provider_upstream", "provider-upstream.log", "the stand-in provider")

    def shape(self, deltas: int, gap_ms: float) -> None:
        """Every later stream: `deltas` text deltas, `gap_ms` apart (0: back to back)."""
        request = urllib.request.Request(f"{self.url}/_bench/shape?deltas={deltas}&gap_ms={gap_ms}", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status != 204:
                raise RuntimeError(f"the stand-in refused the shape: HTTP {response.status}")


def write_litellm_config(folder: Path, backend_url: str) -> Path:
    """The shipped LiteLLM config, its settings untouched, plus the stand-in's model on both routes."""
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    config["model_list"] += [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_base": f"{backend_url}/v1",
                "api_key": "sk-bench-provider",
            },
        },
        # As config/litellm.yaml's Anthropic-route entries (LiteLLM appends /v1/messages to api_base).
        {
            "model_name": ANTHROPIC_MODEL,
            "litellm_params": {"model": f"anthropic/{MODEL}", "api_base": backend_url, "api_key": "sk-bench-provider"},
            "model_info": {"supports_output_config": True},
        },
    ]
    path = folder / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def ccr_command() -> list[str] | None:
    """claude-code-router's CLI, installed from npm into CCR_DIR when missing; None without npm."""
    cli = CCR_DIR / "node_modules" / CCR_PACKAGE / "dist" / "cli.js"
    if not cli.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            return None
        shutil.rmtree(CCR_DIR, ignore_errors=True)
        CCR_DIR.mkdir(parents=True)
        # A package.json of its own, or npm would install into the nearest one above.
        (CCR_DIR / "package.json").write_text('{"private": true}\n')
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"{CCR_PACKAGE}@{CCR_VERSION}"],
            cwd=CCR_DIR,
            check=True,
            stdin=subprocess.DEVNULL,
        )
    return [shutil.which("node"), str(cli)]


class ClaudeCodeRouter(ListeningProcess):
    """`ccr start` (it stays in the foreground) with a throwaway HOME holding its config.json."""

    def __init__(self, folder: Path, command: list[str], backend_url: str):
        home = folder / "ccr-home"
        (home / ".claude-code-router").mkdir(parents=True)
        self.port = free_port()
        config = {
            "HOST": "127.0.0.1",
            "PORT": self.port,
            "Providers": [
                {
                    "name": "bench",
                    "api_base_url": f"{backend_url}/v1/chat/completions",
                    "api_key": "sk-bench-provider",
                    "models": [MODEL],
                }
            ],
            "Router": {"default": f"bench,{MODEL}"},
        }
        (home / ".claude-code-router" / "config.json").write_text(json.dumps(config, indent=2))
        self.log = open(folder / "ccr.log", "wb")
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "NO_PROXY": "*"}
        self.process = subprocess.Popen(
            [*command, "start"], env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.wait_listening("claude-code-router")


class Ways:
    """The stand-in, LiteLLM, stock mitmdump and the stack in front of it, and claude-code-router."""

    def __init__(self, folder: Path, master_key: str, progress):
        self.started: list = []
        self.notes: list[str] = []
        try:
            self.backend = self._start(Backend(folder))
            home = folder / "home"
            home.mkdir()
            env = child_environment(home, master_key)
            config = write_litellm_config(folder, self.backend.url)
            progress("whole stack: starting LiteLLM (litellm_service, the shipped settings)")
            self.litellm = self._start(LiteLLM(config, folder / "litellm.log", env).start())
            self.stock = self._start(StockMitmdump(folder, self.litellm.url, streaming=True))
            self.stack = self._start(Mitmdump(folder / "litellm.log", POLICY, env, litellm_config=config).start())
            self.stack.wait_upstream(self.litellm.url, timeout=START_TIMEOUT)
            progress(f"whole stack: claude-code-router {CCR_VERSION} (npm)")
            command = ccr_command()
            self.ccr = self._start(ClaudeCodeRouter(folder, command, self.backend.url)) if command else None
            if command is None:
                self.notes.append("claude-code-router not measured: node and npm are needed to install it")
        except BaseException:
            self.stop()
            raise

    def _start(self, server):
        self.started.append(server)
        return server

    @property
    def ports(self) -> dict[str, int]:
        ports = {
            "direct": self.backend.port,
            "litellm": self.litellm.address[1],
            "stock": self.stock.port,
            "stack": self.stack.port,
            "litellm-anthropic": self.litellm.address[1],
            "stack-anthropic": self.stack.port,
        }
        if self.ccr:
            ports["ccr"] = self.ccr.port
        return ports

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()


# --- the measurement -----------------------------------------------------------------------------


def _check(way: str, reply: Timed, deltas: int) -> None:
    seqs = sorted(seq for seq, _, _ in reply.stamps)
    if reply.status != 200 or seqs != list(range(deltas)):
        raise RuntimeError(f"{way}: HTTP {reply.status}, deltas {seqs[:5]}... of {deltas}: {reply.body[:300]!r}")


async def _post(
    connections: dict[str, Connection], way: str, bodies: dict[str, bytes], headers: dict[str, str], deltas: int
) -> Timed:
    reply = await connections[way].post(OPENAI_PATH if way == "direct" else ANTHROPIC_PATH, bodies[way], headers)
    _check(way, reply, deltas)
    return reply


async def measure(folder: Path, master_key: str, settings: Settings, progress, profile: Path | None = None) -> dict:
    """`profile`: record LiteLLM with py-spy meanwhile and write its flame graph there."""
    headers = {**workload.claude_code_headers(), "x-api-key": master_key}
    ways = Ways(folder, master_key, progress)
    profiler = None
    try:
        if profile:
            progress(f"profiling LiteLLM (pid {ways.litellm.process.pid}) into {profile}")
            profiler = start_py_spy(ways.litellm.process.pid, 250, profile)
        ports = ways.ports
        names = [way for way in WAYS if way in ports]
        connections: dict[str, Connection] = {}
        try:
            ways.backend.shape(INSTANT_DELTAS, 0)
            # The very first request each way serves after its start (LiteLLM builds FastAPI's route
            # contexts then): one sample, what the first Claude Code turn after a restart waits. Each
            # connection opens just before it (uvicorn closes one idle for 5 s).
            first = {}
            for way in names:
                connections[way] = await Connection(ports[way]).open()
                first[way] = (await _post(connections, way, requests()[0][1], headers, INSTANT_DELTAS)).first_byte_ms
            cases = []
            for case, bodies in requests():
                progress(f"whole stack: {case}, {settings.rounds} x {settings.requests} per way")
                cases.append(await _case(case, bodies, connections, names, headers, settings))
            progress(f"whole stack: streams of {settings.gap_deltas} deltas {settings.gap_ms:g} ms apart")
            ways.backend.shape(settings.gap_deltas, settings.gap_ms)
            events = await _gapped(connections, names, headers, settings)
        finally:
            for connection in connections.values():
                await connection.close()
    finally:
        if profiler:
            stop_py_spy(profiler)
        ways.stop()
    return {
        "ways": names,
        "cases": cases,
        "events": events,
        "first_request_ms": first,
        "ccr_version": CCR_VERSION,
        "notes": ways.notes,
        "instant_deltas": INSTANT_DELTAS,
        "requests": settings.requests,
        "rounds": settings.rounds,
    }


async def _case(
    case: str, bodies: dict[str, bytes], connections, names: list[str], headers, settings: Settings
) -> dict:
    for _ in range(3):  # warm-up: LiteLLM builds its routes and imports on its first requests
        for way in names:
            await _post(connections, way, bodies, headers, INSTANT_DELTAS)
    figures: dict[str, Figure] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, Figure()).add(value)

    orders = shuffled_orders(names)
    for _round in range(settings.rounds):
        times = {way: {"ttfb": [], "last": [], "in": [], "overhead": []} for way in names}
        for _request, order in zip(range(settings.requests), orders):
            for way in order:
                reply = await _post(connections, way, bodies, headers, INSTANT_DELTAS)
                times[way]["ttfb"].append(reply.first_byte_ms)
                times[way]["last"].append(reply.last_event_ms)
                # The backend writes the first delta as soon as the request is in: its stamp is when
                # the request reached the backend.
                times[way]["in"].append((min(sent for _, sent, _ in reply.stamps) - reply.started_ns) / 1e6)
                if OVERHEAD_HEADER in reply.headers:
                    times[way]["overhead"].append(float(reply.headers[OVERHEAD_HEADER]))
        p50 = {
            way: {key: percentile(values, 50) for key, values in got.items() if values} for way, got in times.items()
        }
        for way in names:
            add(f"{way} ttfb", p50[way]["ttfb"])
            add(f"{way} added ttfb", p50[way]["ttfb"] - p50["direct"]["ttfb"])
            add(f"{way} last", p50[way]["last"])
            add(f"{way} in", p50[way]["in"])
            add(f"{way} after", p50[way]["last"] - p50[way]["ttfb"])
            if "overhead" in p50[way]:
                add(f"{way} overhead", p50[way]["overhead"])
            if "ccr" in p50 and way != "ccr":
                add(f"{way}/ccr ttfb", p50[way]["ttfb"] / p50["ccr"]["ttfb"])
        if "ccr" in p50:
            ccr_after = p50["ccr"]["last"] - p50["ccr"]["ttfb"]
            for way in STACKS:
                add(f"{way}-ccr added ttfb", p50[way]["ttfb"] - p50["ccr"]["ttfb"])
                add(f"{way}-ccr after", p50[way]["last"] - p50[way]["ttfb"] - ccr_after)
    return {"case": case, "bytes": len(bodies["stack"]), "figures": figures}


async def _gapped(connections, names: list[str], headers, settings: Settings) -> dict[str, Figure]:
    """Per-event delay (arrival - sent) of gapped streams of the small request, p50 and p99 per round."""
    bodies = requests()[0][1]
    figures: dict[str, Figure] = {}
    for round_ in range(settings.rounds):
        delays: dict[str, list[float]] = {way: [] for way in names}
        order = names if round_ % 2 == 0 else names[::-1]
        for _ in range(settings.gap_streams):
            for way in order:
                reply = await _post(connections, way, bodies, headers, settings.gap_deltas)
                delays[way] += [(arrived - sent) / 1e6 for _, sent, arrived in reply.stamps]
        for way in names:
            for share in (50, 99):
                figures.setdefault(f"{way} p{share}", Figure()).add(percentile(delays[way], share))
                figures.setdefault(f"{way}-direct p{share}", Figure()).add(
                    percentile(delays[way], share) - percentile(delays["direct"], share)
                )
    return figures
