"""How an answer is written: chat-completion chunks or JSON, Anthropic Messages events
or JSON, and the byte-level cuts of the `odd` chunking."""

from __future__ import annotations

import itertools
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from addons.messages.tokens import count_text
from tests.backend.core import (
    UNSET,
    Quirks,
    Text,
    ToolCalls,
    anthropic_request_tokens,
    arguments_text,
    compact,
    default_reasoning,
    default_reasoning_text,
    request_tokens,
    thinks,
)
from tests.backend.providers import BY_NAME


class Completion:
    """Renders one answer (Text or ToolCalls) the way `quirks.provider`
    shapes it: SSE events for a streaming request, a JSON body otherwise."""

    def __init__(self, body: dict[str, Any], reply: Text | ToolCalls, quirks: Quirks) -> None:
        self.body, self.quirks = body, quirks
        self.provider = BY_NAME[quirks.provider]
        self.model = body.get("model") if isinstance(body.get("model"), str) else "stand-in"
        self.id = self.provider.completion_id()
        self.created = int(time.time())
        self.fingerprint = self.provider.fingerprint
        self.text = reply.text
        self.reasoning = ""
        if thinks(body, quirks, self.provider.thinking_off):
            self.reasoning = reply.reasoning if reply.reasoning is not None else default_reasoning(body)
        inline = self.reasoning and not self._reasoning("")
        self.content = self.provider.reasoning_in_content(self.reasoning, self.text) if inline else self.text
        self.calls = [
            (self.provider.call_id(body, index, name), name, arguments_text(arguments))
            for index, (name, arguments) in enumerate(reply.calls if isinstance(reply, ToolCalls) else [])
        ]
        self.finish_reason = getattr(reply, "finish_reason", None) or ("tool_calls" if self.calls else "stop")

    def usage(self) -> dict[str, Any] | None:
        if self.quirks.usage == "null":
            return None
        prompt, completion = 0, 0
        if self.quirks.usage != "zero":
            prompt = request_tokens(self.body)
            completion = count_text(self.text) + sum(count_text(name + arguments) for _, name, arguments in self.calls)
        reasoning = count_text(self.reasoning) if self.quirks.usage != "zero" else 0
        completion += reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage | self.provider.cache_usage(prompt, int(prompt * self.quirks.cached_share))

    # -- non-streaming

    def _reasoning(self, text: str) -> dict[str, Any]:
        """The reasoning (or a piece of it) in the provider's fields; {} when there is none."""
        return self.provider.reasoning_fields(self.body, text) if self.reasoning else {}

    def json_body(self) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, **self._reasoning(self.reasoning)}
        if self.calls:
            if self.provider.null_content_with_calls and not self.text:
                message["content"] = None
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in self.calls
            ]
        result: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "system_fingerprint": self.fingerprint,
        }
        if self.quirks.usage != "absent":
            result["usage"] = self.usage()
        return compact(result).encode()

    # -- streaming

    def _include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = UNSET) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }
        if usage is UNSET:
            # Where the provider puts `"usage": null` on ordinary chunks.
            if self.quirks.usage == "absent":
                return chunk
            if self.provider.usage_null_on_every_chunk or self._include_usage():
                chunk["usage"] = None
            return chunk
        chunk["usage"] = usage
        return chunk

    def _delta(self, delta: dict[str, Any], finish_reason: str | None = None, **usage: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice], **usage)

    def _tool_call_fragments(self) -> Iterator[dict[str, Any]]:
        for index, (call_id, name, arguments) in enumerate(self.calls):
            yield {
                "tool_calls": [
                    {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
            for fragment in split_fragments(arguments):
                yield {"tool_calls": [self.provider.argument_fragment(index, fragment)]}

    def chunks(self) -> list[dict[str, Any]]:
        if self._reasoning(""):
            # DeepSeek: the reasoning first, content null beside it; then the answer.
            chunks = [self._delta({"role": "assistant", "content": None, **self._reasoning("")})]
            chunks += [self._delta({"content": None, **self._reasoning(piece)}) for piece in split_text(self.reasoning)]
        else:
            chunks = [self._delta({"role": "assistant", "content": ""})]
        chunks += [self._delta({"content": piece}) for piece in split_text(self.content)]
        chunks += [self._delta(fragment) for fragment in self._tool_call_fragments()]
        finish_delta: dict[str, Any] = {"content": ""} if self.provider.empty_content_at_finish else {}
        if self.provider.usage_on_finish_chunk and self.quirks.usage != "absent":
            chunks.append(self._delta(finish_delta, self.finish_reason, usage=self.usage()))
        else:
            chunks.append(self._delta(finish_delta, self.finish_reason))
        if not self.provider.usage_on_finish_chunk and self._include_usage() and self.quirks.usage != "absent":
            chunks.append(self._chunk([], usage=self.usage()))
        return chunks

    def open_content(self) -> bytes:
        """A chunk's JSON cut inside its content string: `{..."content": "`."""
        marker = "\u2063fill\u2063"
        text = compact(self._delta({"content": marker}))
        return text[: text.index(marker)].encode()

    def events(self) -> list[bytes]:
        """The SSE events, `data: [DONE]` last (keep-alive comments excluded)."""
        end = self.quirks.line_ending
        payloads = [compact(chunk) for chunk in self.chunks()] + ["[DONE]"]
        return [f"data: {payload}{end}{end}".encode() for payload in payloads]


def split_text(text: str) -> list[str]:
    """Content deltas of two words each (whitespace kept), like a tokenizer would."""
    words = re.findall(r"\s*\S+|\s+$", text)
    return ["".join(words[i : i + 2]) for i in range(0, len(words), 2)]


def split_fragments(arguments: str) -> list[str]:
    """Cut a JSON arguments string into small uneven fragments."""
    sizes = itertools.cycle((3, 7, 2, 5, 11))
    fragments, start = [], 0
    while start < len(arguments):
        size = next(sizes)
        fragments.append(arguments[start : start + size])
        start += size
    return fragments


def odd_pieces(events: list[bytes], seed: int = 0) -> list[bytes]:
    """Cut the concatenated events into writes at awkward places: inside the
    first `data:`, inside the first JSON, between the first \\r and \\n; the
    second and third events share one write; elsewhere cuts fall at random
    sizes, some spanning several events. Deterministic for a given seed."""
    data = b"".join(events)
    if not data:
        return []
    cuts: set[int] = set()
    first = data.find(b"data:")
    if first >= 0:
        cuts.add(first + 3)
    brace = data.find(b"{")
    if brace >= 0:
        cuts.add(min(brace + 5, len(data) - 1))
    crlf = data.find(b"\r\n")
    if crlf >= 0:
        cuts.add(crlf + 1)
    starts = list(itertools.accumulate(len(event) for event in events))  # end offsets
    together = (starts[0], starts[2]) if len(events) >= 3 else (0, 0)
    rng = random.Random(seed)
    average = max(1, len(data) // len(events))
    position = 0
    while True:
        position += rng.randint(1, average * 2)
        if position >= len(data):
            break
        if not together[0] < position < together[1]:
            cuts.add(position)
    cuts = {cut for cut in cuts if 0 < cut < len(data) and not together[0] < cut < together[1]}
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


class MessagesCompletion:
    """Renders one answer as an Anthropic Messages response: SSE events or a JSON body.
    A thinking answer starts with a thinking block signed as its provider signs (provider.thinking_signature)."""

    def __init__(self, body: dict[str, Any], reply: Text | ToolCalls, quirks: Quirks) -> None:
        self.body, self.quirks = body, quirks
        self.id = str(uuid.uuid4())
        self.model = body.get("model") if isinstance(body.get("model"), str) else "stand-in"
        self.provider = BY_NAME[quirks.provider]
        self.reasoning = ""
        if thinks(body, quirks, self.provider.messages_thinking_off):
            self.reasoning = reply.reasoning if reply.reasoning is not None else default_reasoning_text(body)
        self.text = reply.text
        self.calls = [
            (BY_NAME[quirks.provider].messages_call_id(body, index, name), name, arguments)
            for index, (name, arguments) in enumerate(reply.calls if isinstance(reply, ToolCalls) else [])
        ]
        cut = getattr(reply, "finish_reason", None) == "length"
        self.stop_reason = "max_tokens" if cut else "tool_use" if self.calls else "end_turn"

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.reasoning:
            signature = self.provider.thinking_signature(self.id, self.reasoning)
            blocks.append({"type": "thinking", "thinking": self.reasoning, "signature": signature})
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        blocks += [
            {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
            for call_id, name, arguments in self.calls
        ]
        return blocks

    def usage(self) -> dict[str, Any]:
        output = count_text(self.reasoning) + count_text(self.text)
        output += sum(count_text(name + arguments_text(arguments)) for _, name, arguments in self.calls)
        if self.quirks.usage == "zero":
            return {"input_tokens": 0, "output_tokens": 0}
        prompt = anthropic_request_tokens(self.body)
        return self.provider.messages_usage(prompt, int(prompt * self.quirks.cached_share), output)

    def json_body(self) -> bytes:
        blocks = self._blocks()
        if self.stop_reason == "max_tokens" and blocks and blocks[-1]["type"] == "tool_use":
            blocks[-1]["input"] = self.provider.messages_cut_input(blocks[-1]["input"])
        return compact(
            {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": blocks,
                "stop_reason": self.stop_reason,
                "stop_sequence": None,
                "usage": self.usage(),
            }
        ).encode()

    def events(self) -> list[bytes]:
        usage = self.usage()
        zero_start = self.provider.zero_usage_at_start
        start_usage = {"input_tokens": 0, "output_tokens": 0} if zero_start else {**usage, "output_tokens": 0}
        start = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        # The events that end each block: after its deltas, or all at the end (late_thinking_stop).
        endings: list[tuple[str, dict[str, Any]]] = []
        for index, block in enumerate(self._blocks()):
            kind = block["type"]
            tool_start = {key: value for key, value in block.items() if key != "input"}
            opened = {
                "thinking": {"type": "thinking", "thinking": ""}
                if self.provider.late_thinking_stop
                else {"type": "thinking", "thinking": "", "signature": ""},
                "text": {"type": "text", "text": ""},
            }.get(kind, {**tool_start, "input": {}} if self.provider.tool_input_at_start else tool_start)
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
            )
            ending = []
            if kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(block["thinking"])]
                ending.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"])]
            else:
                # A str input (a scripted raw arguments string) streams verbatim.
                deltas = [
                    {"type": "input_json_delta", "partial_json": fragment}
                    for fragment in split_fragments(arguments_text(block["input"]))
                ]
            events += [
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                for delta in deltas
            ]
            block_end = [
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                for delta in ending
            ]
            block_end.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            if self.provider.late_thinking_stop:
                # llama-server ends the thinking block first, then the others, all after the last delta.
                endings = block_end + endings if kind == "thinking" else endings + block_end
            else:
                events += block_end
        events += endings
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": usage if zero_start else {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        end = self.quirks.line_ending
        return [f"event: {name}{end}data: {compact(payload)}{end}{end}".encode() for name, payload in events]
