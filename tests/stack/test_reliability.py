"""The stack under restarts and broken upstreams, with real processes (issue 8).

- Restarts under load: 8 clients that retry the way Claude Code does send 400
  requests through `stabilizer run` while its LiteLLM is SIGKILLed 4 times.
- Stalled and broken upstreams: the stand-in backend stalls, cuts or never ends
  an event behind a real LiteLLM with small timeouts; a scripted upstream plays a
  silent LiteLLM for the idle limit of addons/idle_timeout.py.

Every answer is checked the way a client reads it (the Anthropic SDK's SSE
decoder for streams): a valid message, or an Anthropic-shaped error the client
can act on; never an HTML page, a hang, or a cut stream that looks complete.
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from anthropic._streaming import SSEDecoder as SDKDecoder

from addons.errors.anthropic import is_anthropic_error
from tests.backend import CloseMidEvent, EndlessEvent, PacedStream, StallBeforeFirstByte, StallMidStream, Text
from tests.conftest import POLICY, write_litellm_config
from tests.procs import LineReader, LiteLLM, Mitmdump, free_port, running_line

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")

SEED = 8
CLIENTS = 8
REQUESTS = 400
KILLS = 4
# Claude Code (2.1.x): 10 tries at most; Retry-After when the answer has one, else
# 0.5 s doubling up to 8 s, minus up to 25 % jitter; 408, 409, 429, 5xx and 529
# are retried, and so are connection errors and a stream's overloaded_error event.
MAX_TRIES = 10
RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))
# One try that takes longer than this is a hang.
TRY_TIMEOUT = 60.0


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event, data) as the Anthropic SDK reads them."""
    return [(event.event, event.data) for event in SDKDecoder().iter_bytes(iter([body]))]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def is_stream(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def error(self) -> dict | None:
        """The Anthropic error of a JSON answer, None when it is not one."""
        try:
            payload = json.loads(self.body)
        except ValueError:
            return None
        return payload["error"] if is_anthropic_error(payload) else None


def send(url: str, body: dict, key: str, path: str = "/v1/messages?beta=true", timeout: float = TRY_TIMEOUT) -> Answer:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", path, json.dumps(body), {"x-api-key": key, "content-type": "application/json"})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def message_request(text: str, model: str, stream: bool) -> dict:
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]}


# --- the client that retries like Claude Code ------------------------------------


class Failure(Exception):
    """An answer no client may ever get."""


@dataclass
class Outcome:
    tries: int = 0
    seconds: float = 0.0
    retried_for: list[str] = field(default_factory=list)
    cut_streams: int = 0  # streams that ended with an overloaded_error event
    done_at: float | None = None


def judge(answer: Answer, stream: bool) -> str | None:
    """None for a valid message; the reason to retry; Failure for anything else."""
    content_type = answer.headers.get("content-type", "")
    if "html" in content_type or answer.body.lstrip().startswith(b"<"):
        raise Failure(f"HTML answer: HTTP {answer.status} {answer.body[:200]!r}")
    if answer.status != 200:
        if answer.error() is None:
            raise Failure(f"HTTP {answer.status} that is not an Anthropic error: {answer.body[:300]!r}")
        if answer.status not in RETRYABLE_STATUS:
            raise Failure(f"HTTP {answer.status}: {answer.body[:300]!r}")
        return f"HTTP {answer.status} {answer.error()['type']}"
    if not stream:
        message = json.loads(answer.body)
        # A thinking model's answer starts with its thinking block; the text must follow.
        texts = [block.get("text") for block in message.get("content") or () if block.get("type") == "text"]
        if message.get("type") != "message" or not any(texts):
            raise Failure(f"not a message: {answer.body[:300]!r}")
        return None
    if not answer.is_stream:
        raise Failure(f"a streaming request answered with {content_type}: {answer.body[:300]!r}")
    events = sse_events(answer.body)
    names = [name for name, _ in events]
    if names and names[-1] == "error":
        error = json.loads(events[-1][1])
        if not is_anthropic_error(error) or error["error"]["type"] != "overloaded_error":
            raise Failure(f"stream ended with an error Claude Code does not retry: {events[-1][1]}")
        return "stream error event overloaded_error"
    if not names or names[0] != "message_start" or names[-1] != "message_stop":
        raise Failure(f"stream cut without an error event: {names}")
    text = "".join(json.loads(data)["delta"].get("text", "") for name, data in events if name == "content_block_delta")
    if not text:
        raise Failure(f"stream without text: {answer.body[:300]!r}")
    return None


def retry_delay(attempt: int, answer: Answer | None, rng: random.Random) -> float:
    if answer is not None and (retry_after := answer.headers.get("retry-after")):
        return float(retry_after)
    return min(0.5 * 2 ** (attempt - 1), 8.0) * (1 - rng.random() * 0.25)


def claude_code_like(url: str, key: str, body: dict, rng: random.Random) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    for attempt in range(1, MAX_TRIES + 1):
        outcome.tries = attempt
        answer = None
        try:
            answer = send(url, body, key)
            reason = judge(answer, body["stream"])
        except TimeoutError:
            raise Failure(f"no answer within {TRY_TIMEOUT:.0f} s (try {attempt})") from None
        except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError) as e:
            if body["stream"] and isinstance(e, http.client.IncompleteRead):
                raise Failure(f"stream cut without an error event ({e!r})") from None
            reason = f"connection error {type(e).__name__}"  # Claude Code retries these too
        if reason is None:
            outcome.seconds, outcome.done_at = time.monotonic() - start, time.monotonic()
            return outcome
        outcome.retried_for.append(reason)
        outcome.cut_streams += reason.startswith("stream error event")
        if attempt < MAX_TRIES:
            time.sleep(retry_delay(attempt, answer, rng))
    raise Failure(f"gave up after {MAX_TRIES} tries: {outcome.retried_for}")


# --- restarts under load ---------------------------------------------------------


def child_pids(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in children.read_text().split()} if children.exists() else set()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


@dataclass
class RunStack:
    process: subprocess.Popen
    port: int
    stderr: LineReader
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def litellm_pid(self) -> int | None:
        return next((pid for pid in child_pids(self.process.pid) if b"litellm_service" in cmdline(pid)), None)


def start_stabilizer_run(env: dict, litellm_config: Path, home: Path, *extra: str) -> RunStack:
    """`stabilizer run` on a free port, its logs and env file in `home`; ready when it says so."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "stabilizer"), "run", "--port", str(port),
         "--log-dir", str(home / "logs"), "--litellm-config", str(litellm_config),
         "--env-file", str(home / "env"), "-q", *extra],
        env=env, stdin=subprocess.DEVNULL, stdout=open(home / "run.stdout", "wb"), stderr=subprocess.PIPE,
    )  # fmt: skip
    stack = RunStack(process, port, LineReader(process.stderr), home)
    stack.stderr.wait_for("ready on", timeout=120)
    return stack


def stop_stabilizer_run(stack: RunStack) -> None:
    stack.process.send_signal(signal.SIGINT)
    try:
        stack.process.wait(30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait()


@pytest.fixture(scope="module")
def run_stack(child_env, litellm_config, tmp_path_factory):
    stack = start_stabilizer_run(child_env, litellm_config, tmp_path_factory.mktemp("run"))
    yield stack
    stop_stabilizer_run(stack)


class PacedBackend:
    """Answers each backend request after a short hold mid-answer, so that a kill finds streams in flight."""

    HOLD_SECONDS = 0.2

    def __call__(self, body: dict):
        release = threading.Event()
        timer = threading.Timer(self.HOLD_SECONDS, release.set)
        timer.daemon = True
        timer.start()
        return StallMidStream(after_events=2, until=release, reply=Text("steady answer from the backend"))


def test_restarts_under_load(run_stack, fresh_backend, master_key):
    rng = random.Random(SEED)
    fresh_backend.responder = PacedBackend()
    jobs = [
        (index, message_request(f"request {index}", rng.choice(["demo", "deepseek-flash"]), rng.random() < 0.5))
        for index in range(REQUESTS)
    ]
    # Kill after this many answers: one random moment in each fifth of the run.
    kill_after = [rng.randint(40 + 80 * k, 80 + 80 * k) for k in range(KILLS)]
    lock = threading.Condition()
    outcomes: dict[int, Outcome] = {}
    failures: list[str] = []
    kills: list[float] = []

    def client(number: int) -> None:
        client_rng = random.Random(SEED * 100 + number)
        while True:
            with lock:
                if not jobs or failures:
                    return
                index, body = jobs.pop(0)
            try:
                outcome = claude_code_like(run_stack.url, master_key, body, client_rng)
            except Failure as e:
                with lock:
                    failures.append(f"request {index} ({body['model']}, stream={body['stream']}): {e}")
                    lock.notify_all()
                return
            with lock:
                outcomes[index] = outcome
                lock.notify_all()

    def killer() -> None:
        for threshold in kill_after:
            with lock:
                if not lock.wait_for(lambda: len(outcomes) >= threshold or failures, timeout=180) or failures:
                    return
            pid = run_stack.litellm_pid()
            if pid is None:
                return
            os.kill(pid, signal.SIGKILL)
            kills.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=killer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a client hangs"

    assert not failures, "\n".join(failures)
    assert len(outcomes) == REQUESTS
    assert len(kills) == KILLS
    done = sorted([started] + [outcome.done_at for outcome in outcomes.values()])
    gap = max(later - earlier for earlier, later in zip(done, done[1:]))
    slowest = max(outcomes.values(), key=lambda outcome: outcome.seconds)
    cut_streams = sum(outcome.cut_streams for outcome in outcomes.values())
    retries = sum(outcome.tries - 1 for outcome in outcomes.values())
    print(
        f"\n{REQUESTS} requests, {CLIENTS} clients, {KILLS} kills of LiteLLM in {time.monotonic() - started:.1f} s: "
        f"longest gap between two answers {gap:.1f} s; slowest request {slowest.seconds:.1f} s over "
        f"{slowest.tries} tries; {retries} retries; {cut_streams} streams cut by a kill ended with overloaded_error"
    )
    # The kills found streams in flight, and those streams said so.
    assert cut_streams >= 1
    assert run_stack.process.poll() is None


def test_requests_wait_for_a_restarting_litellm(stack, litellm, master_key):
    """A restart outlasts Claude Code's ~10 s of retries: after the first refusal, requests wait for the new port."""
    demo = message_request("hi", "demo", False)
    litellm.kill()
    refused = send(stack.url, demo, master_key)
    assert refused.status == 503 and refused.error()["type"] == "overloaded_error"
    restart = threading.Thread(target=litellm.start)
    restart.start()
    try:
        answer = send(stack.url, demo, master_key)
    finally:
        restart.join()
    assert judge(answer, stream=False) is None, answer


# --- stalled and broken upstreams behind a real LiteLLM ----------------------------

# Small limits for the test; config/litellm.yaml ships 120 s / 600 s and 540 s.
LITELLM_STALL_SECONDS = 2
IDLE_LIMIT_SECONDS = 6
# The client's own limit: the stand-in backend holds a stall for 120 s, so an answer
# within this time came from a limit above, not from the stall ending.
STALL_CLIENT_TIMEOUT = 45.0
STALL_TEXT = "please stall"


def write_stall_config(path: Path, backend_url: str) -> Path:
    write_litellm_config(path, backend_url)
    config = yaml.safe_load(path.read_text())
    config["router_settings"] |= {"stream_timeout": LITELLM_STALL_SECONDS, "timeout": LITELLM_STALL_SECONDS,
                                  "num_retries": 0}  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stalling_stack(backend, child_env, tmp_path_factory):
    """LiteLLM with small timeouts and no retries, behind mitmdump with a small idle limit."""
    home = tmp_path_factory.mktemp("stalls")
    config = write_stall_config(home / "litellm.yaml", backend.base_url)
    litellm = LiteLLM(config, home / "litellm.log", child_env).start()
    proxy = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=config).start(
        ("--set", f"stabilizer_upstream_idle_timeout={IDLE_LIMIT_SECONDS}")
    )
    proxy.wait_upstream(litellm.url)
    yield proxy
    proxy.stop()
    litellm.stop()


class Bystanders:
    """Other clients, asking all the time while one request stalls; every one must get its answer."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.answers: list[str | None] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            stream = index % 2 == 0
            body = message_request(f"bystander {index}", ["deepseek-flash", "demo"][index % 4 // 2], stream)
            try:
                self.answers.append(judge(send(self.url, body, self.key, timeout=30), stream))
            except (Failure, OSError) as e:
                self.answers.append(f"{type(e).__name__}: {e}")
            index += 1

    def __enter__(self) -> "Bystanders":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(60)
        assert self.answers, "no bystander request finished while the stall lasted"
        assert self.answers == [None] * len(self.answers), self.answers


def stall_with(backend, reply_factory) -> None:
    """The backend answers requests that say STALL_TEXT with a fresh broken reply, others normally."""
    backend.responder = lambda body: reply_factory() if STALL_TEXT in json.dumps(body) else None


def timed_send(stack, master_key, stream: bool) -> tuple[Answer, float]:
    start = time.monotonic()
    body = message_request(STALL_TEXT, "deepseek-flash", stream)
    answer = send(stack.url, body, master_key, timeout=STALL_CLIENT_TIMEOUT)
    return answer, time.monotonic() - start


def assert_retryable_json_error(answer: Answer) -> dict:
    assert answer.status in RETRYABLE_STATUS and answer.headers["content-type"] == "application/json", answer
    error = answer.error()
    assert error is not None, answer.body
    return error


def assert_stream_ends_with_error_event(answer: Answer) -> dict:
    assert answer.status == 200 and answer.is_stream, answer
    events = sse_events(answer.body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names, names
    error = json.loads(events[-1][1])
    assert is_anthropic_error(error), error
    return error["error"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_stall_before_first_byte(stalling_stack, fresh_backend, master_key, stream):
    stall_with(fresh_backend, StallBeforeFirstByte)
    with Bystanders(stalling_stack.url, master_key):
        answer, seconds = timed_send(stalling_stack, master_key, stream)
    # LiteLLM's timeout: 408 with an Anthropic api_error body (Claude Code retries 408).
    error = assert_retryable_json_error(answer)
    assert "Timeout" in error["message"], error
    print(f"\nstall before the first byte ({'stream' if stream else 'json'}): HTTP {answer.status} "
          f"{error['type']} after {seconds:.1f} s")  # fmt: skip


def test_stall_mid_stream(stalling_stack, fresh_backend, master_key):
    stall_with(fresh_backend, lambda: StallMidStream(after_events=2))
    with Bystanders(stalling_stack.url, master_key):
        answer, seconds = timed_send(stalling_stack, master_key, True)
    error = assert_stream_ends_with_error_event(answer)
    assert "Timeout" in error["message"], error
    print(f"\nstall mid-stream: SSE error event {error['type']} after {seconds:.1f} s")


def test_stall_mid_json_body(stalling_stack, fresh_backend, master_key):
    stall_with(fresh_backend, lambda: StallMidStream(after_events=2))
    answer, seconds = timed_send(stalling_stack, master_key, False)
    error = assert_retryable_json_error(answer)
    print(f"\nstall mid-body (json): HTTP {answer.status} {error['type']} after {seconds:.1f} s")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_connection_closed_mid_event(stalling_stack, fresh_backend, master_key, stream):
    stall_with(fresh_backend, lambda: CloseMidEvent(after_events=2))
    with Bystanders(stalling_stack.url, master_key):
        answer, seconds = timed_send(stalling_stack, master_key, stream)
    error = assert_stream_ends_with_error_event(answer) if stream else assert_retryable_json_error(answer)
    print(f"\nconnection closed mid-event ({'stream' if stream else 'json'}): {error['type']} after {seconds:.1f} s")


def test_endless_event_is_given_up_after_the_idle_limit(stalling_stack, fresh_backend, master_key):
    # Small writes keep the bytes flowing (so no read timeout fires) without
    # piling gigabytes into LiteLLM, which buffers the unfinished event.
    endless: list[EndlessEvent] = []

    def endless_event() -> EndlessEvent:
        endless.append(EndlessEvent(chunk_size=128, max_bytes=1 << 30, max_seconds=60))
        return endless[-1]

    stall_with(fresh_backend, endless_event)
    with Bystanders(stalling_stack.url, master_key):
        answer, seconds = timed_send(stalling_stack, master_key, True)
    # LiteLLM opens its stream (message_start) as soon as the backend answers, then
    # waits for an event that never ends: the idle limit closes it, and the stream
    # ends with the overloaded_error event of a cut upstream (a 503 if LiteLLM had
    # not started its answer yet).
    error = assert_stream_ends_with_error_event(answer) if answer.is_stream else assert_retryable_json_error(answer)
    assert error["type"] == "overloaded_error", answer
    assert seconds >= IDLE_LIMIT_SECONDS
    # Closing the connection made LiteLLM give up the backend request.
    assert endless[0].ended.wait(15)
    assert endless[0].sent_bytes > 0
    print(f"\nendless event: {'SSE error event' if answer.is_stream else 'HTTP 503'} overloaded_error after "
          f"{seconds:.1f} s; the backend sent "
          f"{endless[0].sent_bytes / 1e6:.1f} MB and was hung up on")  # fmt: skip


# --- the idle limit itself, against a scripted upstream ------------------------------

IDLE_LIMIT_FAST = 2


def read_request(connection: socket.socket) -> bool:
    """Reads one request; False for a connection closed before one came (the Upstream addon's probe)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if not (received := connection.recv(65536)):
            return False
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return True


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
)
BLOCK_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"slow "}}\n\n'
)
ENDING = (
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":4}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


class ScriptedUpstream:
    """Plays LiteLLM for one request: `script(connection)` writes the answer; `hung_up` is
    set when the proxy closes the connection."""

    def __init__(self, script):
        self.script = script
        self.hung_up = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self) -> None:
        while not read_request(connection := self.listener.accept()[0]):
            connection.close()
        with connection:
            self.script(connection)
            connection.settimeout(60)
            try:
                while connection.recv(65536):
                    pass
                self.hung_up.set()
            except OSError:
                self.hung_up.set()
        self.listener.close()


@pytest.fixture(scope="module")
def watched_proxy(child_env, tmp_path_factory):
    """mitmdump with the addons and a 2 s idle limit, following a log the test writes."""
    log = tmp_path_factory.mktemp("idle") / "litellm.log"
    proxy = Mitmdump(log, None, child_env).start(("--set", f"stabilizer_upstream_idle_timeout={IDLE_LIMIT_FAST}"))
    yield proxy, log
    proxy.stop()


def route_to(watched_proxy, upstream: ScriptedUpstream) -> Mitmdump:
    proxy, log = watched_proxy
    with open(log, "ab") as f:
        f.write(running_line(upstream.url))
    proxy.wait_upstream(upstream.url)
    return proxy


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_silent_upstream_gets_a_503_after_the_idle_limit(watched_proxy, master_key, stream):
    upstream = ScriptedUpstream(lambda connection: None)
    proxy = route_to(watched_proxy, upstream)
    answer = send(proxy.url, message_request("hi", "m", stream), master_key, timeout=30)
    assert answer.status == 503 and answer.headers["retry-after"] == "1"
    assert answer.error()["type"] == "overloaded_error"
    assert upstream.hung_up.wait(10)


def test_upstream_silent_mid_stream_gets_an_error_event(watched_proxy, master_key):
    upstream = ScriptedUpstream(
        lambda connection: connection.sendall(SSE_HEAD + chunk(MESSAGE_START) + chunk(BLOCK_START))
    )
    proxy = route_to(watched_proxy, upstream)
    answer = send(proxy.url, message_request("hi", "m", True), master_key, timeout=30)
    error = assert_stream_ends_with_error_event(answer)
    assert error["type"] == "overloaded_error"
    assert upstream.hung_up.wait(10)


def test_a_slow_stream_that_keeps_sending_is_not_cut(watched_proxy, master_key):
    def trickle(connection: socket.socket) -> None:
        connection.sendall(SSE_HEAD + chunk(MESSAGE_START) + chunk(BLOCK_START))
        for _ in range(4):  # 4 x 0.8 s: longer than the 2 s limit in all, never 2 s silent
            time.sleep(0.8)
            connection.sendall(chunk(DELTA))
        connection.sendall(chunk(ENDING) + b"0\r\n\r\n")

    upstream = ScriptedUpstream(trickle)
    proxy = route_to(watched_proxy, upstream)
    start = time.monotonic()
    answer = send(proxy.url, message_request("hi", "m", True), master_key, timeout=30)
    assert time.monotonic() - start > IDLE_LIMIT_FAST
    assert judge(answer, stream=True) is None
    assert [name for name, _ in sse_events(answer.body)].count("content_block_delta") == 4


def test_idle_limit_rejects_a_negative_value(child_env, tmp_path):
    proxy = Mitmdump(tmp_path / "litellm.log", None, child_env)
    with pytest.raises(RuntimeError, match="exited"):
        proxy.start(("--set", "stabilizer_upstream_idle_timeout=-1"))
    proxy.stop()
    assert "stabilizer_upstream_idle_timeout must be 0" in Path(proxy.log.name).read_text()


# --- one large request beside a stream ---------------------------------------------


class PacedReader(threading.Thread):
    """Reads a PacedStream through the stack and releases its next event only once the one
    before has arrived: every event is a round trip through mitmdump's event loop."""

    def __init__(self, url: str, key: str, backend):
        super().__init__(daemon=True)
        self.url, self.key = url, key
        # Words that differ: LiteLLM ends a stream that repeats one chunk 100 times with an error.
        self.paced = PacedStream(Text(" ".join(f"w{n}" for n in range(8000))))  # about 4000 events
        backend.responder = lambda body: self.paced if "paced" in json.dumps(body) else None
        self.arrivals: list[float] = []
        self.ended = False
        self.started = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            connection.request(
                "POST",
                "/v1/messages",
                json.dumps(message_request("paced", "deepseek-flash", True)),
                {"x-api-key": self.key, "content-type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200, response.read()
            self.paced.step.release()  # one ahead: the backend's first chunk may carry no delta
            while line := response.readline():
                if line.startswith(b"data:") and b'"content_block_delta"' in line:
                    self.arrivals.append(time.monotonic())
                    self.started.set()
                    self.paced.step.release()
                self.ended = self.ended or (line.startswith(b"data:") and b'"message_stop"' in line)
        except BaseException as e:
            self.error = e
        finally:
            connection.close()
            self.started.set()


@pytest.mark.parametrize(
    "path, answered",
    [
        # 20 MB to count for a 1M window: the stack counts it and answers "prompt is too long" itself.
        ("/v1/messages", 400),
        # Counted by the stack, then by LiteLLM: its count (or the stack's estimate) comes back.
        ("/v1/messages/count_tokens", 200),
    ],
)
def test_a_20_mb_request_beside_a_stream_does_not_hold_its_events(stack, fresh_backend, master_key, path, answered):
    # Words of their own: nothing about them is remembered from an earlier request.
    text = " ".join(f"w{random.getrandbits(20)}" for _ in range(2_500_000))
    body = json.dumps({"model": "deepseek-flash", "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
    reader = PacedReader(stack.url, master_key, fresh_backend)
    reader.start()
    assert reader.started.wait(60) and reader.error is None, reader.error
    host, port = stack.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request("POST", path, body, {"x-api-key": master_key, "content-type": "application/json"})
        sent = time.monotonic()  # the whole body is out: from here on the stack reads and counts it
        response = connection.getresponse()
        answered_at = time.monotonic()
        assert response.status == answered, response.read()[:300]
    finally:
        connection.close()
    reader.paced.step.release(len(reader.paced.reply.text))  # the rest at once
    reader.join(120)
    assert reader.error is None, reader.error
    during = sum(sent <= t <= answered_at for t in reader.arrivals)
    print(f"\n{path}: {during} stream events came through in the {answered_at - sent:.2f} s the 20 MB request took")
    # Each event waits for the one before to come through the stack. Counting 20 MB takes the
    # stack about a second; on its event loop no event would pass meanwhile.
    assert during >= 20, f"{during} events in {answered_at - sent:.2f} s"
    assert reader.ended  # and the stream came whole
