"""A corpus of bad requests: what a broken client, a fuzzer or a hostile local
process might send to the stabilizer's port.

Each case is one raw HTTP/1.1 request, built when it is needed (the 20 MB
bodies are generated, never stored). `encoded` cases carry a valid Messages
request in a Content-Encoding the proxy must decode; `answered_by_us` marks
the cases the addons answer themselves (prompt too long) instead of LiteLLM.
The master key is filled in by the test; `{key}` stands for it.
"""

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy.net.encoding import encode

MESSAGES = "/v1/messages?beta=true"
COUNT_TOKENS = "/v1/messages/count_tokens?beta=true"
MODEL = "deepseek-flash"  # strict about keys and values, and thinking by default
TWENTY_MB = 20 * 1024 * 1024
DEEP = 100_000


def valid(**overrides) -> dict:
    return {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hello"}], **overrides}


def as_json(value) -> bytes:
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | Callable[[], bytes] = b""
    method: str = "POST"
    path: str = MESSAGES
    # Headers besides host, x-api-key and content-length; content-type defaults to JSON.
    headers: tuple[tuple[str, str], ...] = ()
    # A valid request in a content encoding: it must be answered like the plain body.
    encoded: bool = False
    content_type: str | None = "application/json"
    # Sent as is, instead of a request built from the fields above.
    raw: bytes | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def body_bytes(self) -> bytes:
        return self.body() if callable(self.body) else self.body

    def request_bytes(self, key: str) -> bytes:
        if self.raw is not None:
            return self.raw.replace(b"{key}", key.encode())
        body = self.body_bytes()
        lines = [f"{self.method} {self.path} HTTP/1.1", "host: 127.0.0.1", f"x-api-key: {key}"]
        if self.content_type is not None:
            lines.append(f"content-type: {self.content_type}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        if body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def _huge_text_request() -> bytes:
    # Words, not one repeated character: tokenizing must see realistic text.
    words = b" ".join(b"lorem%d" % (i % 997) for i in range(TWENTY_MB // 8))
    head = b'{"model":"%s","max_tokens":32,"messages":[{"role":"user","content":"' % MODEL.encode()
    return head + words[:TWENTY_MB] + b'"}]}'


def _huge_history_request() -> bytes:
    turn = "x " * 5000
    turns = TWENTY_MB // len(turn) | 1  # odd: the history ends with the user
    messages = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i} {turn}"} for i in range(turns)]
    return as_json(valid(messages=messages))


def _deep_array() -> bytes:
    return b'{"model":"%s","max_tokens":32,"messages":' % MODEL.encode() + b"[" * DEEP + b"]" * DEEP + b"}"


def _deep_object() -> bytes:
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


def _deep_content() -> bytes:
    inner = b"[" * DEEP + b"]" * DEEP
    return b'{"model":"%s","max_tokens":32,"messages":[{"role":"user","content":%s}]}' % (MODEL.encode(), inner)


def _between_parser_limits() -> bytes:
    # Deeper than orjson reads (1024), not as deep as the stdlib's limit.
    inner = b"[" * 1100 + b"]" * 1100
    block = {"type": "tool_use", "id": "t", "name": "n", "input": {}}
    request = as_json(valid(messages=[{"role": "user", "content": [block]}]))
    return request.replace(b'"input": {}', b'"input": {"a": ' + inner + b"}")


# The start of a raw request, up to the headers a case adds.
HEAD = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\n"


def _chunked(headers: bytes = b"", trailer: bytes = b"", extension: bytes = b"") -> bytes:
    """A valid request as one chunk and the last chunk, then the trailer section (may be empty)."""
    body = as_json(valid())
    return (
        HEAD
        + b"content-type: application/json\r\ntransfer-encoding: chunked\r\n"
        + headers
        + b"\r\n"
        + b"%x%s\r\n%s\r\n0%s\r\n%s\r\n" % (len(body), extension, body, extension, trailer)
    )


def _encoded(encoding: str) -> Callable[[], bytes]:
    # Thinking off (as Claude Code asks for some subagents), so the answer is the echo alone: the
    # switch must survive the decoding too.
    request = valid(messages=[{"role": "user", "content": f"encoded with {encoding}"}], thinking={"type": "disabled"})
    return lambda: encode(as_json(request), encoding)


CASES: list[Case] = [
    # -- not JSON, or not quite
    Case("truncated JSON", b'{"model": "deepseek-flash", "messages": [{"role": "user", "con'),
    Case("truncated after a key", b'{"model"'),
    Case("only an opening brace", b"{"),
    Case("only a closing brace", b"}"),
    Case("trailing garbage", as_json(valid()) + b" trailing"),
    Case("two objects", as_json(valid()) + as_json(valid())),
    Case("single quotes", b"{'model': 'deepseek-flash', 'messages': []}"),
    Case("comments", b'// a comment\n{"model": "deepseek-flash", "messages": []}'),
    Case("NaN literal", as_json(valid(max_tokens=0)).replace(b"0", b"NaN")),
    Case("Infinity literal", as_json(valid(max_tokens=0)).replace(b"0", b"Infinity")),
    Case("byte order mark", b"\xef\xbb\xbf" + as_json(valid())),
    Case("UTF-16 body", json.dumps(valid()).encode("utf-16")),
    Case("bytes that are not UTF-8", as_json(valid()).replace(b"hello", b"caf\xe9 \xff\xfe")),
    Case("random binary", bytes(range(256)) * 4),
    Case("NUL bytes", b"\x00" * 1000),
    Case("empty body", b""),
    Case("whitespace body", b" \r\n\t "),
    # -- JSON, but not an object
    Case("JSON array", b"[]"),
    Case("array of messages", as_json([{"role": "user", "content": "hi"}])),
    Case("JSON string", b'"hello"'),
    Case("JSON number", b"42"),
    Case("JSON null", b"null"),
    Case("JSON true", b"true"),
    Case("empty object", b"{}"),
    # -- an object with the wrong insides
    Case("messages missing", as_json({"model": MODEL, "max_tokens": 32})),
    Case("messages null", as_json(valid(messages=None))),
    Case("messages a string", as_json(valid(messages="hello"))),
    Case("messages an object", as_json(valid(messages={"role": "user", "content": "hi"}))),
    Case("messages a number", as_json(valid(messages=7))),
    Case("messages empty", as_json(valid(messages=[]))),
    Case("messages of strings", as_json(valid(messages=["hi", "there"]))),
    Case("messages of nulls", as_json(valid(messages=[None, None]))),
    Case("message without role", as_json(valid(messages=[{"content": "hi"}]))),
    Case("message with unknown role", as_json(valid(messages=[{"role": "wizard", "content": "hi"}]))),
    Case("only system messages", as_json(valid(messages=[{"role": "system", "content": "be nice"}]))),
    Case("content a number", as_json(valid(messages=[{"role": "user", "content": 5}]))),
    Case("content an object", as_json(valid(messages=[{"role": "user", "content": {"type": "text", "text": "hi"}}]))),
    Case("content of numbers", as_json(valid(messages=[{"role": "user", "content": [1, 2, 3]}]))),
    Case("block of unknown type", as_json(valid(messages=[{"role": "user", "content": [{"type": "hologram"}]}]))),
    Case("block without type", as_json(valid(messages=[{"role": "user", "content": [{"text": "hi"}]}]))),
    Case("block type a number", as_json(valid(messages=[{"role": "user", "content": [{"type": 7, "text": "hi"}]}]))),
    Case("text block without text", as_json(valid(messages=[{"role": "user", "content": [{"type": "text"}]}]))),
    Case(
        "tool_use without id",
        as_json(
            valid(
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": {}}]},
                    {"role": "user", "content": "go on"},
                ]
            )
        ),
    ),
    Case(
        "tool_result for no tool_use",
        as_json(
            valid(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "42"}],
                    }
                ]
            )
        ),
    ),
    Case(
        "image with a broken source",
        as_json(
            valid(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"},
                            }
                        ],
                    }
                ]
            )
        ),
    ),
    Case(
        "thinking blocks only",
        as_json(
            valid(
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "x"}]},
                    {"role": "user", "content": "and?"},
                ]
            )
        ),
    ),
    Case("system a number", as_json(valid(system=12))),
    Case("system of garbage", as_json(valid(system=[None, 1, {"type": "image"}]))),
    Case("tools a string", as_json(valid(tools="all of them"))),
    Case("tools of garbage", as_json(valid(tools=[None, 1, "x", {"name": 5}]))),
    Case(
        "only server tools",
        as_json(
            valid(
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
                tool_choice={"type": "tool", "name": "web_search"},
            )
        ),
    ),
    Case("tool_choice garbage", as_json(valid(tool_choice=[1, 2]))),
    Case("max_tokens a string", as_json(valid(max_tokens="lots"))),
    Case("max_tokens a numeric string", as_json(valid(max_tokens="100000"))),
    Case("tool_choice without type", as_json(valid(tool_choice={"disable_parallel_tool_use": True}))),
    Case(
        "system message content a text block object",
        as_json(
            valid(
                messages=[
                    {"role": "user", "content": "hello"},
                    {"role": "system", "content": {"type": "text", "text": "be brief"}},
                ]
            )
        ),
        tags=frozenset({"valid"}),
    ),
    Case(
        "system message content a number",
        as_json(valid(messages=[{"role": "user", "content": "hello"}, {"role": "system", "content": 7}])),
    ),
    Case(
        "tool results split over user turns, a system message after the calls",
        as_json(
            valid(
                tools=[{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}],
                messages=[
                    {"role": "user", "content": "read a and b"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": f"toolu_{n}", "name": "Read", "input": {"file_path": n}}
                            for n in "ab"
                        ],
                    },
                    {"role": "system", "content": "a reminder"},
                    *(
                        {
                            "role": "user",
                            "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": n}],
                        }
                        for n in "ab"
                    ),
                ],
            )
        ),
        tags=frozenset({"valid"}),
    ),
    Case("max_tokens negative", as_json(valid(max_tokens=-5))),
    Case("max_tokens beyond 64 bits", as_json(valid(max_tokens=10**30))),
    Case("model missing", as_json({"max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]})),
    Case("model a number", as_json(valid(model=42))),
    Case("model unknown", as_json(valid(model="no-such-model"))),
    Case("stream a string", as_json(valid(stream="yes"))),
    Case("thinking garbage", as_json(valid(thinking={"type": "enabled", "budget_tokens": "all"}))),
    # Claude Code cuts a string inside an emoji; LiteLLM refused the half left (400, every turn after).
    Case("lone surrogate", as_json(valid()).replace(b"hello", b"a\\ud800b"), tags=frozenset({"valid"})),
    Case(
        "high surrogate ending a string",
        as_json(valid()).replace(b"hello", b"cut here \\uD83D"),
        tags=frozenset({"valid"}),
    ),
    Case(
        "lone low surrogate and a whole pair",
        as_json(valid()).replace(b"hello", b"\\udc00 \\ud83d\\ude00"),
        tags=frozenset({"valid"}),
    ),
    Case("NUL in text", as_json(valid(messages=[{"role": "user", "content": "a\u0000b"}]))),
    # -- big and deep
    Case("20 MB in one message", _huge_text_request, tags=frozenset({"answered_by_us"})),
    Case("20 MB of history", _huge_history_request),
    Case("messages nested 100,000 deep", _deep_array),
    Case("object nested 100,000 deep", _deep_object),
    Case("content nested 100,000 deep", _deep_content),
    Case("tool input nested 1,100 deep", _between_parser_limits),
    Case("count_tokens nested 100,000 deep", _deep_array, path=COUNT_TOKENS),
    Case("count_tokens truncated JSON", b'{"model": "deepseek-flash", "messages": [', path=COUNT_TOKENS),
    Case("count_tokens JSON array", b"[1, 2]", path=COUNT_TOKENS),
    Case("count_tokens messages a string", as_json(valid(messages="hi")), path=COUNT_TOKENS),
    # -- content encodings
    Case("gzip body", _encoded("gzip"), headers=(("content-encoding", "gzip"),), encoded=True),
    Case("br body", _encoded("br"), headers=(("content-encoding", "br"),), encoded=True),
    Case("zstd body", _encoded("zstd"), headers=(("content-encoding", "zstd"),), encoded=True),
    Case("deflate body", _encoded("deflate"), headers=(("content-encoding", "deflate"),), encoded=True),
    Case(
        "gzip count_tokens", _encoded("gzip"), path=COUNT_TOKENS, headers=(("content-encoding", "gzip"),), encoded=True
    ),
    Case("gzip header, plain body", as_json(valid()), headers=(("content-encoding", "gzip"),)),
    Case("corrupt gzip", gzip.compress(as_json(valid()))[:30], headers=(("content-encoding", "gzip"),)),
    Case("unknown encoding", as_json(valid()), headers=(("content-encoding", "rot13"),)),
    Case("gzip bomb", lambda: gzip.compress(b" " * (200 * 1024 * 1024)), headers=(("content-encoding", "gzip"),)),
    # -- content types
    Case("text/plain JSON", as_json(valid()), content_type="text/plain"),
    Case("form-encoded", b"model=deepseek-flash&messages=hi", content_type="application/x-www-form-urlencoded"),
    Case(
        "multipart",
        b"--b\r\ncontent-disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    ),
    Case("no content type", as_json(valid()), content_type=None),
    # -- other methods and paths
    Case("GET messages", method="GET", content_type=None),
    Case("PUT messages", as_json(valid()), method="PUT"),
    Case("DELETE messages", method="DELETE", content_type=None),
    Case("PATCH messages", as_json(valid()), method="PATCH"),
    Case("OPTIONS messages", method="OPTIONS", content_type=None),
    Case("HEAD messages", method="HEAD", content_type=None),
    Case("unknown v1 path", as_json(valid()), path="/v1/unknown"),
    Case("messages sub-path", as_json(valid()), path="/v1/messages/extra"),
    Case("trailing slash", as_json(valid()), path="/v1/messages/"),
    Case("double slash", as_json(valid()), path="//v1/messages"),
    Case("dot segments", as_json(valid()), path="/v1/../v1/messages"),
    Case("encoded path", as_json(valid()), path="/v1/%6D%65ssages"),
    Case("legacy completions", as_json({"model": MODEL, "prompt": "\n\nHuman: hi\n\nAssistant:"}), path="/v1/complete"),
    Case("path traversal", method="GET", path="/../../etc/passwd", content_type=None),
    Case("very long path", method="GET", path="/v1/" + "a" * 60_000, content_type=None),
    Case("very long query", as_json(valid()), path=MESSAGES + "&x=" + "y" * 60_000),
    # -- headers
    Case("very long header", as_json(valid()), headers=(("x-junk", "z" * 60_000),)),
    Case("a thousand headers", as_json(valid()), headers=tuple((f"x-h{i}", "v") for i in range(1000))),
    Case("huge anthropic-beta", as_json(valid()), headers=(("anthropic-beta", ",".join(["feature-x"] * 5000)),)),
    Case("content-length not a number", raw=HEAD + b"content-length: lots\r\n\r\n{}"),
    Case("two content-lengths", raw=HEAD + b"content-length: 2\r\ncontent-length: 3\r\n\r\n{}"),
    Case("chunked body", raw=_chunked(), tags=frozenset({"valid"})),
    # mitmproxy's HTTP/1 reader raised at a trailer section: no answer at all.
    Case("chunked body with a trailer", raw=_chunked(trailer=b"x-trailer: v\r\n"), tags=frozenset({"valid"})),
    Case(
        "chunked body with declared trailers and chunk extensions",
        raw=_chunked(
            headers=b"trailer: x-checksum, x-count\r\n",
            trailer=b"x-checksum: abc\r\nx-count: 1\r\n",
            extension=b";name=value",
        ),
        tags=frozenset({"valid"}),
    ),
    Case("not HTTP at all", raw=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    Case("HTTP/0.9 request line", raw=b"GET /\r\n\r\n"),
    Case("bad request line", raw=b"POST\r\n\r\n"),
]
