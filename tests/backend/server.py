"""The HTTP server and `Backend`, the handle a test holds: start/stop, script,
quirks, and what was received."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.server
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.backend.checks import check_messages_request, check_request
from tests.backend.core import (
    CloseMidEvent,
    EndlessEvent,
    Error,
    Exchange,
    PacedStream,
    Quirks,
    Reply,
    StallBeforeFirstByte,
    StallMidStream,
    Text,
    ToolCalls,
    anthropic_error,
    compact,
    default_reply,
)
from tests.backend.providers import BY_NAME, MODEL_QUIRKS, PROFILES, PROVIDERS, ollama, provider_for
from tests.backend.render import Completion, MessagesCompletion, odd_pieces

logger = logging.getLogger(__name__)

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MESSAGES_PATHS = ("/v1/messages",)
MODELS_PATHS = ("/v1/models", "/models")


# A stall nobody releases ends on its own after this long: a forgotten
# Event must fail one test, not hang the session.
MAX_STALL_SECONDS = 120.0


# --------------------------------------------------------------------------
# The HTTP server.


def _route(path: str) -> str:
    return path.split("?", 1)[0]


class _ClientGone(Exception):
    """The client closed the connection, or stop()/reset() cut it."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stand-in-backend"
    sys_version = ""
    timeout = 60  # idle kept-alive connections and writes nobody reads
    server: _Server

    # -- plumbing

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.backend._register(self.connection)
        self.exchange: Exchange | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.backend._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("backend: " + format, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.exchange is not None:
            self.exchange.status = code
        super().send_response(code, message)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as error:
            raise _ClientGone from error

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _abort(self) -> None:
        """Close the socket now, mid-response, so the client sees a cut."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hold(self, until: threading.Event | None, release: threading.Event) -> bool:
        """Wait for `until` (True) or for reset()/stop()/timeout (False)."""
        deadline = time.monotonic() + MAX_STALL_SECONDS
        while time.monotonic() < deadline:
            if until is not None and until.is_set():
                return True
            if release.wait(0.02):
                return False
        return False

    # -- routes

    def do_GET(self) -> None:
        self.exchange = self.server.backend._receive("GET", self.path, dict(self.headers), None)
        if _route(self.path) not in MODELS_PATHS:
            self._not_found()
            return
        models = [
            "deepseek-flash",
            "deepseek-v4-pro",
            "qwen-plus",
            "qwen3-coder-plus",
            "kimi-k3",
            "glm-5.3",
            "MiniMax-M3",
            "gpt-4o-mini",
        ]
        self._send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": provider_for(name)} for name in models
                ],
            },
        )

    def do_POST(self) -> None:
        backend = self.server.backend
        length = self.headers.get("Content-Length")
        if length is None:
            self.exchange = backend._receive("POST", self.path, dict(self.headers), None)
            self._send_json(
                411,
                {
                    "error": {
                        "message": "Content-Length required",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            return
        raw = self.rfile.read(int(length)).decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(raw)
            problem = None if isinstance(body, dict) else "expected a JSON object"
        except json.JSONDecodeError as error:
            body, problem = None, f"{error.msg} at line {error.lineno} column {error.colno}"
        self.exchange = backend._receive("POST", self.path, dict(self.headers), body)
        release = backend._release
        route = _route(self.path)
        if route not in CHAT_PATHS + MESSAGES_PATHS:
            self._not_found()
            return
        if problem is not None:
            provider = BY_NAME[backend.provider or "openai"]
            error = provider.invalid_json_error(problem)
            if route in MESSAGES_PATHS:
                own = provider.messages_invalid_json_error
                error = own(problem) if own is not None else anthropic_error(error.body["error"]["message"])
            self._send_error(error)
            return
        quirks = backend.quirks_for(body.get("model"))
        if route in MESSAGES_PATHS:
            rejection = check_messages_request(body, quirks)
        else:
            rejection = check_request(body, raw, quirks)
        if rejection is not None:
            self._send_error(rejection)
            return
        if quirks.truncate_history and quirks.context_window is not None:
            body, self.exchange.dropped_messages = ollama.fit_history(
                body, quirks.context_window, route in MESSAGES_PATHS
            )
        try:
            self._answer(body, backend._next_reply(body), quirks, release)
        except _ClientGone:
            self.close_connection = True

    # -- answers

    def _send_json(
        self, status: int, payload: Any, extra: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        data = payload if isinstance(payload, bytes) else compact(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write(data)

    def _not_found(self) -> None:
        self._send_json(
            404,
            {
                "error": {
                    "message": f"Not found: {self.path}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "not_found",
                }
            },
        )

    def _send_error(self, error: Error) -> None:
        data = error.body if isinstance(error.body, str) else compact(error.body)
        self._send_json(error.status, data.encode(), error.headers, error.content_type)

    def _answer(self, body: dict[str, Any], reply: Reply, quirks: Quirks, release: threading.Event) -> None:
        match reply:
            case Error():
                self._send_error(reply)
            case Text() | ToolCalls():
                messages_route = _route(self.path) in MESSAGES_PATHS
                completion = (MessagesCompletion if messages_route else Completion)(body, reply, quirks)
                if body.get("stream"):
                    self._start_stream(quirks)
                    self._stream(completion.events(), quirks)
                    self._write(b"0\r\n\r\n")
                else:
                    data = completion.json_body()
                    self._start_json(len(data), quirks)
                    self._write(data)
            case StallBeforeFirstByte():
                reply.reached.set()
                if not self._hold(reply.until, release):
                    self._abort()
                    return
                self._answer(body, reply.then or default_reply(body), quirks, release)
            case StallMidStream():
                self._stall_mid_stream(body, reply, quirks, release)
            case CloseMidEvent():
                self._close_mid_event(body, reply, quirks)
            case EndlessEvent():
                self._endless(body, reply, quirks, release)
            case PacedStream():
                self._paced(body, reply, quirks, release)
            case _:
                raise TypeError(f"not a Reply: {reply!r}")

    def _start_stream(self, quirks: Quirks) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream(
            [f": keep-alive{quirks.line_ending}{quirks.line_ending}".encode()] * quirks.keepalive,
            dataclasses.replace(quirks, chunking="normal"),
        )

    def _start_json(self, length: int, quirks: Quirks) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length + quirks.keepalive))
        self.end_headers()
        if quirks.keepalive:
            self._write(b"\n" * quirks.keepalive)

    def _stream(self, events: list[bytes], quirks: Quirks) -> None:
        pieces = odd_pieces(events) if quirks.chunking == "odd" else events
        for piece in pieces:
            self._write_chunk(piece)

    def _send_first_part(
        self, body: dict[str, Any], reply: StallMidStream | CloseMidEvent, quirks: Quirks
    ) -> tuple[list[bytes], bool]:
        """Send the status, headers and the first part of the answer; return
        the pieces still to send and whether they belong to a stream."""
        completion = Completion(body, reply.reply or default_reply(body), quirks)
        if body.get("stream"):
            events = completion.events()
            split = min(max(reply.after_events, 0), len(events))
            self._start_stream(quirks)
            self._stream(events[:split], quirks)
            return events[split:], True
        data = completion.json_body()
        self._start_json(len(data), quirks)
        self._write(data[: len(data) // 2])
        return [data[len(data) // 2 :]], False

    def _stall_mid_stream(
        self, body: dict[str, Any], reply: StallMidStream, quirks: Quirks, release: threading.Event
    ) -> None:
        rest, streaming = self._send_first_part(body, reply, quirks)
        reply.reached.set()
        if not self._hold(reply.until, release):
            self._abort()
        elif streaming:
            self._stream(rest, quirks)
            self._write(b"0\r\n\r\n")
        else:
            self._write(rest[0])

    def _close_mid_event(self, body: dict[str, Any], reply: CloseMidEvent, quirks: Quirks) -> None:
        rest, streaming = self._send_first_part(body, reply, quirks)
        if rest:
            half = rest[0][: len(rest[0]) // 2]
            self._write_chunk(half) if streaming else self._write(half)
        self._abort()
        reply.reached.set()

    def _paced(self, body: dict[str, Any], reply: PacedStream, quirks: Quirks, release: threading.Event) -> None:
        first, *rest = Completion(body, reply.reply or default_reply(body), quirks).events()
        self._start_stream(quirks)
        self._write_chunk(first)
        for event in rest:
            while not reply.step.acquire(timeout=0.02):
                if release.is_set():
                    self._abort()
                    return
            self._write_chunk(event)
        self._write(b"0\r\n\r\n")

    def _endless(self, body: dict[str, Any], reply: EndlessEvent, quirks: Quirks, release: threading.Event) -> None:
        opening = Completion(body, Text(""), quirks).open_content()
        try:
            if body.get("stream"):
                self._start_stream(quirks)
                self._write_chunk(b"data: " + opening)
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._write_chunk(opening)
            reply.reached.set()
            filler = b"x" * reply.chunk_size
            deadline = time.monotonic() + reply.max_seconds
            while reply.sent_bytes < reply.max_bytes and time.monotonic() < deadline and not release.is_set():
                self._write_chunk(filler)
                reply.sent_bytes += len(filler)
        finally:
            self._abort()
            reply.ended.set()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: no leaks
    block_on_close = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("backend: connection from %s ended with an error", client_address, exc_info=True)


class Backend:
    """The stand-in provider. `Backend().start()` listens on a free loopback
    port in a background thread; `stop()` releases every stall, closes every
    connection and joins every thread."""

    def __init__(self, provider: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if provider is not None and provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        self.provider = provider  # forces one profile whatever the model name
        self.responder: Callable[[dict[str, Any]], Reply | None] | None = None
        self._address = (host, port)
        self._lock = threading.Condition()
        self._exchanges: list[Exchange] = []
        self._script: list[Reply] = []
        self._overrides: dict[str, Any] = {}
        self._model_overrides: dict[str, dict[str, Any]] = {}  # by model name, over the others
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        self._stopping = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Backend:
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-backend", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with self._lock:
            self._stopping = True
            self._release.set()
            connections = list(self._connections)
        self._server.shutdown()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = None

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("backend not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}/v1"

    def reset(self) -> None:
        """Forget requests, script, responder and overrides; end every stall."""
        with self._lock:
            self._exchanges.clear()
            self._script.clear()
            self._overrides = {}
            self._model_overrides = {}
            self.responder = None
            self._release.set()
            self._release = threading.Event()

    # -- what a test reads

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def _bodies(self, paths: tuple[str, ...]) -> list[dict[str, Any]]:
        """JSON bodies of the POSTs received on these paths, in order."""
        with self._lock:
            return [
                e.body
                for e in self._exchanges
                if e.method == "POST" and _route(e.path) in paths and isinstance(e.body, dict)
            ]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion POSTs received, in order."""
        return self._bodies(CHAT_PATHS)

    @property
    def messages_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the Anthropic Messages POSTs received, in order."""
        return self._bodies(MESSAGES_PATHS)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` JSON bodies have arrived; TimeoutError otherwise."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived within {timeout} s")
            return self.requests

    # -- what a test sets

    def script(self, replies: list[Reply]) -> None:
        """Answer the next accepted requests with these replies, in order; then
        `responder`, then the default answer. Requests the provider rejects
        (400 for a key, max_tokens or the context) do not consume a reply."""
        with self._lock:
            self._script = list(replies)

    @contextlib.contextmanager
    def quirks(self, model: str | None = None, **overrides: Any) -> Iterator[Backend]:
        """Override profile fields (see Quirks) for the duration of the block; for the requests
        naming `model` only, when given (a small local server behind a larger cloud model, say)."""
        unknown = set(overrides) - {field.name for field in dataclasses.fields(Quirks)}
        if unknown:
            raise TypeError(f"unknown quirks: {', '.join(sorted(unknown))}")
        if overrides.get("provider", "openai") not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, not {overrides['provider']!r}")
        dataclasses.replace(PROFILES["openai"], **overrides)  # validates the other values now
        previous, previous_by_model = self._overrides, self._model_overrides
        if model is None:
            self._overrides = previous | overrides
        else:
            self._model_overrides = previous_by_model | {model: previous_by_model.get(model, {}) | overrides}
        try:
            yield self
        finally:
            self._overrides, self._model_overrides = previous, previous_by_model

    def quirks_for(self, model: Any) -> Quirks:
        profile = PROFILES[self.provider or provider_for(model)]
        name = model.lower() if isinstance(model, str) else ""
        defaults: dict[str, Any] = {}
        for prefix in sorted(MODEL_QUIRKS, key=len):
            if name.startswith(prefix):
                defaults |= MODEL_QUIRKS[prefix]
        for_model = self._model_overrides.get(model, {}) if isinstance(model, str) else {}
        return dataclasses.replace(profile, **(defaults | self._overrides | for_model))

    # -- used by the handler

    def _register(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _receive(self, method: str, path: str, headers: dict[str, str], body: Any) -> Exchange:
        exchange = Exchange(method, path, headers, body)
        with self._lock:
            self._exchanges.append(exchange)
            self._lock.notify_all()
        return exchange

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            responder = self.responder
        reply = responder(body) if responder is not None else None
        return reply if reply is not None else default_reply(body)


def _parse_quirk(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    if name not in {field.name for field in dataclasses.fields(Quirks)}:
        raise argparse.ArgumentTypeError(f"unknown quirk {name!r}")
    if value in ("true", "false"):
        return name, value == "true"
    if value == "none":
        return name, None
    if value.isdigit():
        return name, int(value)
    return name, value.replace("\\r", "\r").replace("\\n", "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Stand-in model provider (DeepSeek, Qwen, Kimi, GLM, MiniMax, vLLM, Ollama, llama-server profiles)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--provider", choices=PROVIDERS, help="force one profile (default: from the model name)")
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        type=_parse_quirk,
        metavar="NAME=VALUE",
        help="override a profile field, e.g. usage=null, chunking=odd, line_ending=\\r\\n",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    backend = Backend(args.provider, args.host, args.port)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    with backend, backend.quirks(**dict(args.quirk)):
        print(f"stand-in backend listening on {backend.base_url}", flush=True)
        stopped.wait()
