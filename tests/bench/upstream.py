"""A fast stand-in for the bundle's upstream (LiteLLM's Anthropic `/v1/messages`).

The benchmarks want the proxy's own cost, so this server does as little as it
can: a raw asyncio protocol, no JSON parsing, answers prepared once. It speaks
Anthropic Messages as LiteLLM does in front of an OpenAI-compatible backend:

- a request whose body says `"stream":true` gets an event stream in HTTP/1.1
  chunked encoding, one chunk per event, `message_start.usage` all zeros and
  the real usage in `message_delta` (what the response addon patches);
- any other POST gets one JSON message with its usage.

Request headers shape the stream: `x-bench-events` (how many events, at
least 6; default 7, a short answer) and `x-bench-gap-ms` (the gap between two
events; default 0: the whole stream in one write). Each event of a gapped
stream carries `id: <seq> <monotonic ns when sent>`, so a client on the same
machine can tell how long each event took to reach it (CLOCK_MONOTONIC is one
clock for every process) and whether it arrived before the next was sent.

With `x-bench-ack: <token>` the stream goes in lockstep: event i+1 is sent at
its time but never before the client has acknowledged event i, with a UDP
datagram `<token> <i>` to the ack port. An event that a proxy keeps until a
later one comes is then caught for sure: its acknowledgement does not come,
and after ACK_TIMEOUT the next event goes anyway and arrives before or with it.
A stream stops waiting after MAX_MISSED_ACKS misses, so it always ends.

Run: `python -m tests.bench.upstream [--port 0]`; it prints
`listening on http://127.0.0.1:PORT acks udp:ACKPORT` once it accepts connections.
"""

import asyncio
import time

from tests.bench.stand_in import NOT_FOUND, Requests, main

MESSAGE_JSON = (
    b'{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"Hi."}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":17000,"output_tokens":3}}'
)
MESSAGE_START = (
    b'{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench",'
    b'"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}'
)
BLOCK_START = b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
TEXT_DELTA = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}'
BLOCK_STOP = b'{"type":"content_block_stop","index":0}'
MESSAGE_DELTA = (
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"input_tokens":17000,"output_tokens":%d}}'
)
MESSAGE_STOP = b'{"type":"message_stop"}'
# Events around the text deltas: message_start, content_block_start; content_block_stop, message_delta, message_stop.
FRAME_EVENTS = 5
DEFAULT_EVENTS = 7
ACK_TIMEOUT = 0.1
MAX_MISSED_ACKS = 3


def stream_events(count: int) -> list[tuple[bytes, bytes]]:
    """(event name, data) of a text answer of `count` events in all."""
    deltas = max(1, count - FRAME_EVENTS)
    return [
        (b"message_start", MESSAGE_START),
        (b"content_block_start", BLOCK_START),
        *[(b"content_block_delta", TEXT_DELTA)] * deltas,
        (b"content_block_stop", BLOCK_STOP),
        (b"message_delta", MESSAGE_DELTA % deltas),
        (b"message_stop", MESSAGE_STOP),
    ]


def chunk(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


def sse(name: bytes, data: bytes, event_id: bytes = b"") -> bytes:
    head = b"id: " + event_id + b"\n" if event_id else b""
    return head + b"event: " + name + b"\ndata: " + data + b"\n\n"


JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(MESSAGE_JSON)
    + MESSAGE_JSON
)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
INSTANT_STREAM = STREAM_HEAD + b"".join(chunk(sse(n, d)) for n, d in stream_events(DEFAULT_EVENTS)) + b"0\r\n\r\n"


class Acks(asyncio.DatagramProtocol):
    """The clients' acknowledgements: the highest event seen per stream token."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}
        self.waiting: dict[bytes, tuple[int, asyncio.Future]] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        token, _, seq = data.partition(b" ")
        self.seen[token] = max(self.seen.get(token, -1), int(seq))
        waiter = self.waiting.get(token)
        if waiter and waiter[0] <= self.seen[token] and not waiter[1].done():
            waiter[1].set_result(None)

    async def received(self, token: bytes, seq: int) -> bool:
        """Whether event `seq` of stream `token` is acknowledged within ACK_TIMEOUT."""
        if self.seen.get(token, -1) >= seq:
            return True
        future = asyncio.get_running_loop().create_future()
        self.waiting[token] = (seq, future)
        try:
            await asyncio.wait_for(future, ACK_TIMEOUT)
            return True
        except TimeoutError:
            return False
        finally:
            del self.waiting[token]

    def forget(self, token: bytes) -> None:
        self.seen.pop(token, None)


class Upstream(Requests):
    def __init__(self, acks: Acks) -> None:
        super().__init__()
        self.acks = acks

    def respond(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        if method != b"POST" or not path.startswith(b"/v1/messages"):
            self.transport.write(NOT_FOUND)
        elif b'"stream":true' not in body:
            self.transport.write(JSON_RESPONSE)
        else:
            events = int(headers.get(b"x-bench-events", DEFAULT_EVENTS))
            gap = float(headers.get(b"x-bench-gap-ms", 0)) / 1000
            token = headers.get(b"x-bench-ack")
            if gap <= 0 and events == DEFAULT_EVENTS and token is None:
                self.transport.write(INSTANT_STREAM)
            else:
                self.streaming = asyncio.ensure_future(self.stream(events, gap, token))

    async def stream(self, count: int, gap: float, token: bytes | None) -> None:
        """Events at fixed times start + i * gap, whatever each write cost: the gap never drifts."""
        self.transport.write(STREAM_HEAD)
        loop = asyncio.get_running_loop()
        start = loop.time()
        missed = 0
        try:
            for seq, (name, data) in enumerate(stream_events(count)):
                if gap > 0 and (wait := start + seq * gap - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if (
                    token is not None
                    and seq
                    and missed < MAX_MISSED_ACKS
                    and not await self.acks.received(token, seq - 1)
                ):
                    missed += 1
                event_id = b"%d %d" % (seq, time.monotonic_ns())
                self.transport.write(chunk(sse(name, data, event_id)))
            self.transport.write(b"0\r\n\r\n")
        finally:
            if token is not None:
                self.acks.forget(token)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    ack_transport, acks = await loop.create_datagram_endpoint(Acks, local_addr=("127.0.0.1", 0))
    server = await loop.create_server(lambda: Upstream(acks), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    ack_port = ack_transport.get_extra_info("sockname")[1]
    print(f"listening on http://127.0.0.1:{bound} acks udp:{ack_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    main(serve, __doc__.splitlines()[0])
