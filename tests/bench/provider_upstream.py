"""A fast stand-in model provider for the whole-stack benchmark (tests/bench/whole_stack.py).

What LiteLLM and claude-code-router talk to, answered as a provider's gateway
does, with as little work as it can (a raw asyncio protocol, no JSON
parsing), so that every way a request can go is timed against the same
backend. Like DeepSeek, Qwen, Kimi, GLM, Ollama and vLLM it serves both APIs:

- `POST .../chat/completions` (OpenAI-compatible): a request whose body says
  `"stream": true` (with or without the space) gets a Chat Completions event
  stream, HTTP/1.1 chunked, one chunk and one write per event: a role chunk,
  the text deltas, a finish chunk carrying the usage (as DeepSeek sends it),
  then `data: [DONE]`; any other request one JSON completion;
- `POST /v1/messages` (Anthropic-compatible, for LiteLLM's `anthropic/`
  route): the same text as an Anthropic event stream (message_start,
  content_block_start, the text deltas, content_block_stop, message_delta
  with the usage, message_stop), one write per event; or one JSON message.

Every socket is written with TCP_NODELAY (set explicitly on each accepted
connection): with Nagle's algorithm on, an event written right after another
waits for the client's delayed ACK (up to 40 ms on Linux), and the benchmark
would measure the backend, not the proxies.

Each text delta's content is a stamp, `t<seq>.<monotonic ns when written> `,
which survives every translation (LiteLLM's and claude-code-router's Anthropic
text deltas carry the text as is), so a client on this machine can tell how
long each event took to reach it whichever proxy it went through.

The shape of the streams (how many text deltas, and the gap between two) is
set for all later requests with `POST /_bench/shape?deltas=N&gap_ms=G`, sent
to this server directly: the proxies in front forward neither a header nor
the query of the client's request, and the bodies stay the same for every way.

Run: `python -m tests.bench.provider_upstream [--port 0]`; it prints
`listening on http://127.0.0.1:PORT` once it accepts connections.
"""

import asyncio
import re
import socket
import time
from urllib.parse import parse_qs, urlsplit

from tests.bench.stand_in import NOT_FOUND, Requests, main

DEFAULT_DELTAS = 10
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_CHUNK_HEAD = b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764115200,"model":"bench-model",'
ROLE_CHUNK = _CHUNK_HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
TEXT_CHUNK = _CHUNK_HEAD + b'"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
FINISH_CHUNK = (
    _CHUNK_HEAD + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":17000,"completion_tokens":%d,"total_tokens":%d}}'
)
COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1764115200,"model":"bench-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":17000,"completion_tokens":3,"total_tokens":17003}}'
)
MESSAGE = (
    b'{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[{"type":"text","text":"Hi."}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":17000,"output_tokens":3}}'
)
MESSAGE_START = (
    b'{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model",'
    b'"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":17000,"output_tokens":1}}}'
)
BLOCK_START = b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
TEXT_DELTA = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}'
BLOCK_STOP = b'{"type":"content_block_stop","index":0}'
MESSAGE_DELTA = (
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"input_tokens":17000,"output_tokens":%d}}'
)
MESSAGE_STOP = b'{"type":"message_stop"}'
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
COMPLETION_RESPONSE = JSON_HEAD % len(COMPLETION) + COMPLETION
MESSAGE_RESPONSE = JSON_HEAD % len(MESSAGE) + MESSAGE
SHAPED = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


def stamp(seq: int) -> bytes:
    return b"t%d.%d " % (seq, time.monotonic_ns())


def chunk(data: bytes, name: bytes = b"") -> bytes:
    """One SSE event (named, as Anthropic's are, or not, as OpenAI's) as one HTTP chunk."""
    event = (b"event: " + name + b"\n" if name else b"") + b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


class Shape:
    """Text deltas per stream and the gap between two (seconds); set by /_bench/shape."""

    deltas = DEFAULT_DELTAS
    gap = 0.0


class Backend(Requests):
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def respond(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        target = urlsplit(path.decode("latin-1"))
        if method == b"POST" and target.path == "/_bench/shape":
            query = parse_qs(target.query)
            Shape.deltas = int(query.get("deltas", [DEFAULT_DELTAS])[0])
            Shape.gap = float(query.get("gap_ms", [0])[0]) / 1000
            self.transport.write(SHAPED)
        elif method == b"POST" and target.path.endswith("/chat/completions"):
            if _STREAM.search(body):
                self.streaming = asyncio.ensure_future(self.stream(Shape.deltas, Shape.gap, anthropic=False))
            else:
                self.transport.write(COMPLETION_RESPONSE)
        elif method == b"POST" and target.path == "/v1/messages":
            if _STREAM.search(body):
                self.streaming = asyncio.ensure_future(self.stream(Shape.deltas, Shape.gap, anthropic=True))
            else:
                self.transport.write(MESSAGE_RESPONSE)
        else:
            self.transport.write(NOT_FOUND)

    async def stream(self, deltas: int, gap: float, anthropic: bool) -> None:
        """Text deltas at fixed times start + i * gap, whatever each write cost: the gap never drifts."""
        write = self.transport.write
        write(STREAM_HEAD)
        if anthropic:
            write(chunk(MESSAGE_START, b"message_start"))
            write(chunk(BLOCK_START, b"content_block_start"))
        else:
            write(chunk(ROLE_CHUNK))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seq in range(deltas):
            if gap > 0 and (wait := start + seq * gap - loop.time()) > 0:
                await asyncio.sleep(wait)
            if anthropic:
                write(chunk(TEXT_DELTA % stamp(seq), b"content_block_delta"))
            else:
                write(chunk(TEXT_CHUNK % stamp(seq)))
        if anthropic:
            write(chunk(BLOCK_STOP, b"content_block_stop"))
            write(chunk(MESSAGE_DELTA % deltas, b"message_delta"))
            write(chunk(MESSAGE_STOP, b"message_stop"))
        else:
            write(chunk(FINISH_CHUNK % (deltas, 17000 + deltas)))
            write(chunk(b"[DONE]"))
        write(b"0\r\n\r\n")


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Backend, "127.0.0.1", port, backlog=1024)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    main(serve, __doc__.splitlines()[0])
