"""The stream patcher: an Anthropic event stream patched as it passes, event by event.

Nothing here knows about mitmproxy: bytes in, bytes out (the response addon
installs a StreamPatcher as the flow's stream callable).
"""

import logging
from typing import Any

from addons.errors.anthropic import error_payload
from addons.errors.upstream import RefusalContext, classify_error, kept_as_it_came
from addons.flow.change import Change, ChangeKind
from addons.messages.provenance import wrap_event
from addons.messages.think_tags import ThinkTagSplitter
from addons.messages.tokens import count_text
from addons.response.tool_cut import UnfinishedToolCalls
from addons.response.usage import add_trimmed, complete_usage, filled_notes, is_substitute_input, reported_count
from addons.wire.json_codec import from_json
from addons.wire.sse import MAX_EVENT_BYTES, SSEDecoder, SSEEvent, encode_event, json_data, parse_event, replace_data

CONTENT_BLOCK_EVENTS = frozenset({"content_block_start", "content_block_delta", "content_block_stop"})
# Event types of Anthropic's Messages stream. A data-only event whose JSON has
# one of these types gets its `event:` line: the SDKs skip unnamed events.
STREAM_EVENT_TYPES = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)

TRUNCATED_STREAM_MESSAGE = "upstream stream ended before message_stop"
# What the flow records when the <think> splitter found reasoning, in a stream or a whole message.
THINK_TAGS_SPLIT = Change(ChangeKind.THINKING, "reasoning inside <think> tags sent as a thinking block")

logger = logging.getLogger(__name__)


class StreamPatcher:
    """Patches an Anthropic event stream as it passes.

    feed() returns the bytes ready to go on (b"" while an event is still
    incomplete); finish() returns the rest. Only message_start, message_delta,
    malformed or refusal error events (explain_refusal) and unnamed events are
    rewritten; every other byte goes through as it came. content_block_delta data is kept aside unparsed
    and read only if the backend reports no output count.

    A stream that started a message and ends with neither message_stop nor an
    error event gets an `overloaded_error` event appended, so the client
    retries instead of taking a truncated answer for a whole one.

    A tool call cut by max_tokens is left unfinished, its content_block_stop
    dropped (addons/response/tool_cut.py): tool_use blocks' deltas are read.
    """

    def __init__(
        self,
        input_tokens_estimate: int = 0,
        max_event_bytes: int = MAX_EVENT_BYTES,
        fixed_tokens_estimate: int = 0,
        refusal: RefusalContext | None = None,
        think_tags: bool = False,
        origin: str | None = None,
        trimmed_tokens: int = 0,
    ) -> None:
        self.input_estimate = input_tokens_estimate
        self.trimmed_tokens = trimmed_tokens  # cut from the request: added to the input count (add_trimmed)
        self.refusal = refusal  # named when an error event is a refusal (explain_refusal)
        self.fixed_estimate = fixed_tokens_estimate
        self.changes: list[Change] = []  # what it changed so far
        self.message_started = False
        self.message_stopped = False
        self.error_seen = False
        # Auto mode's verdicts on the message's tool calls, as message_delta carried them (None: none).
        self.safeguard_results: Any = None
        self._decoder = SSEDecoder(max_event_bytes)
        self._deltas: list[bytes] = []
        self._reported_input: int | None = None
        self._named_events = False
        self._oversized_noted = False
        # Reasoning inside <think> tags in the text, sent on as thinking blocks (addons/messages/think_tags.py).
        self._splitter = ThinkTagSplitter() if think_tags else None
        # The model that writes this answer: named in its thinking signatures (addons/messages/provenance.py).
        self.origin = origin
        self._signed = 0
        self._tools = UnfinishedToolCalls()

    def feed(self, chunk: bytes) -> bytes:
        out = b"".join([self._patch_or_pass(event) for event in self._decoder.feed(chunk)])
        if self._decoder.in_oversized_event and not self._oversized_noted:
            self._oversized_noted = True
            unpatched = f"an event over {self._decoder.max_event_bytes} bytes passed on unpatched"
            self.changes.append(Change(ChangeKind.OTHER, unpatched))
        return out

    def finish(self) -> bytes:
        # Cut inside an event already passed on: end it so the error below parses.
        cut_open = self._decoder.in_oversized_event
        events, rest = self._decoder.finish()
        out = [self._patch_or_pass(event) for event in events]
        if rest:
            if (event := _leftover_event(rest)) is not None:
                out.append(self._patch_or_pass(event))
            elif self._truncated():
                # Half an event of a cut stream: the client would choke on it
                # before it got to the error event below.
                self.changes.append(
                    Change(ChangeKind.UPSTREAM_ERROR, f"dropped {len(rest)} bytes of an unfinished event")
                )
            else:
                out.append(rest)
        if self._tools.holding:
            out.append(self._tools.release())
        if self._truncated():
            self.error_seen = True
            ended = "stream ended without message_stop: appended an overloaded_error event"
            self.changes.append(Change(ChangeKind.UPSTREAM_ERROR, ended))
            error = encode_event("error", json_data(error_payload("overloaded_error", TRUNCATED_STREAM_MESSAGE)))
            out.append(b"\n\n" + error if cut_open else error)
        return b"".join(out)

    def _truncated(self) -> bool:
        return self.message_started and not (self.message_stopped or self.error_seen)

    def _patch_or_pass(self, event: SSEEvent) -> bytes:
        try:
            return self._patch(event)
        except Exception:  # a patching bug must not cost the client an event
            logger.exception("patching a %s event failed; passed it through unchanged", event.event)
            return event.raw

    def _patch(self, event: SSEEvent) -> bytes:
        name = event.event
        if self._splitter is not None and name in CONTENT_BLOCK_EVENTS:
            return self._split(event, self._splitter, name)
        if name == "content_block_delta":  # the hot path: nearly every event
            if event.data is not None:
                if self._tools.tracking and b"input_json_delta" in event.data:
                    self._track(name, _payload(event))
                if self.origin is not None and b"signature_delta" in event.data:
                    return self._signed_event(event)
                self._deltas.append(event.data)
            return event.raw
        if name == "content_block_start":
            held = self._release_held()
            if b'"tool_use"' in (event.data or b""):
                self._track(name, _payload(event))
            if self.origin is not None and b'"thinking"' in (event.data or b""):
                return held + self._signed_event(event)
            return held + event.raw
        if name == "content_block_stop":
            if self._tools.tracking and self._track(name, _payload(event), event.raw):
                return b""
            return event.raw
        if name is None:
            return self._patch_unnamed(event)
        if name == "message_start":
            self.message_started = True
            return self._rewrite(event, self._patch_message_start)
        if name == "message_delta":
            return self._settle_held(event) + self._rewrite(event, self._patch_message_delta)
        if name == "message_stop":
            self.message_stopped = True
            return self._release_held() + event.raw
        if name == "error":
            self.error_seen = True
            return self._release_held() + self._rewrite_error(event)
        return event.raw

    def _track(self, name: str, payload: Any, raw: bytes = b"") -> bool:
        """Follow the tool_use blocks (addons/response/tool_cut.py); True: `raw`, a
        content_block_stop, is held back."""
        if not isinstance(payload, dict):
            return False
        if name == "content_block_start":
            self._tools.started(payload)
        elif name == "content_block_delta":
            self._tools.delta(payload)
        elif name == "content_block_stop":
            return self._tools.stopped(payload, raw)
        return False

    def _release_held(self) -> bytes:
        return self._tools.release() if self._tools.holding else b""

    def _settle_held(self, event: SSEEvent) -> bytes:
        """At message_delta: held content_block_stop events dropped when the message ended at
        max_tokens (Claude Code then drops the cut call and asks the model to resume), else
        sent on before it."""
        if not self._tools.holding:
            return b""
        payload = _payload(event)
        delta = payload.get("delta") if isinstance(payload, dict) else None
        if not (isinstance(delta, dict) and delta.get("stop_reason") == "max_tokens"):
            return self._tools.release()
        dropped = self._tools.drop()
        cut = f"tool calls cut by max_tokens left unfinished (x{dropped}): Claude Code drops them, runs none"
        self.changes.append(Change(ChangeKind.REPAIRED, cut))
        return b""

    def _split(self, event: SSEEvent, splitter: ThinkTagSplitter, event_name: str) -> bytes:
        """A content block event through the <think> splitter: the events it gives in its place."""
        payload = _payload(event)
        if not isinstance(payload, dict):
            return event.raw
        noticed = splitter.split
        out = []
        for name, data in splitter.feed(event_name, payload):
            self._sign(data)
            encoded = json_data(data)
            if name == "content_block_start":
                out.append(self._release_held())
            if self._track(name, data, encode_event(name, encoded)):
                continue
            if name == "content_block_delta":
                self._deltas.append(encoded)
            out.append(encode_event(name, encoded))
        if splitter.split and not noticed:
            self.changes.append(THINK_TAGS_SPLIT)
        return b"".join(out)

    def _signed_event(self, event: SSEEvent) -> bytes:
        """The event with the origin wrapped into the thinking signature it carries, if it carries one."""
        payload = _payload(event)
        if not isinstance(payload, dict) or not self._sign(payload):
            return event.raw
        return replace_data(event, json_data(payload))

    def _sign(self, payload: dict[str, Any]) -> bool:
        """Wrap the origin into a thinking signature the event carries, in place (the first noted)."""
        if self.origin is None or not wrap_event(payload, self.origin):
            return False
        if not self._signed:
            self.changes.append(Change(ChangeKind.THINKING, f"thinking signatures name their origin, {self.origin}"))
        self._signed += 1
        return True

    def _patch_unnamed(self, event: SSEEvent) -> bytes:
        """Data without an `event:` line: named after its JSON type, if it has one."""
        if event.data is None or not event.data.lstrip().startswith(b"{"):
            return event.raw  # comments, keep-alives, `[DONE]`
        try:
            kind = from_json(event.data).get("type")
        except (ValueError, AttributeError):
            return event.raw
        if kind not in STREAM_EVENT_TYPES:
            return event.raw
        if not self._named_events:
            self._named_events = True
            self.changes.append(Change(ChangeKind.REPAIRED, "added missing `event:` lines"))
        return self._patch(parse_event(replace_data(event, event.data, name=kind)))

    def _rewrite(self, event: SSEEvent, patch) -> bytes:
        """Apply `patch` to the event's JSON object; re-encode only if it changed something."""
        payload = _payload(event)
        if not isinstance(payload, dict) or not (changes := patch(payload)):
            return event.raw
        self.changes.extend(changes)
        return replace_data(event, json_data(payload))

    def _rewrite_error(self, event: SSEEvent) -> bytes:
        """An error event stays where it is, in Anthropic's shape."""
        payload = _payload(event)
        text = (event.data or b"").decode("utf-8", "replace")
        status, error_type, message = classify_error(None, payload, text, refusal=self.refusal)
        if kept_as_it_came(payload, status, message):
            return event.raw
        self.changes.append(Change(ChangeKind.UPSTREAM_ERROR, f"error event reshaped to {error_type}"))
        data = json_data(error_payload(error_type, message))
        return replace_data(event, data) if event.data is not None else encode_event("error", data)

    def _patch_message_start(self, payload: dict[str, Any]) -> list[Change]:
        message = payload.get("message")
        if not isinstance(message, dict):
            return []
        usage = message.get("usage")
        message["usage"], filled = complete_usage(usage, self.input_estimate, None, self.fixed_estimate)
        if isinstance(usage, dict) and reported_count(usage.get("input_tokens")) is not None:
            self._reported_input = message["usage"]["input_tokens"]
        return filled_notes("message_start", filled + add_trimmed(message["usage"], self.trimmed_tokens))

    def _patch_message_delta(self, payload: dict[str, Any]) -> list[Change]:
        """output_tokens always; input_tokens when the key is there without a
        figure, or when message_start had none either (an absent key keeps the
        client's message_start figure). Auto mode's safeguard_results pass as they
        came, and are kept for the notes."""
        if isinstance(delta := payload.get("delta"), dict) and "safeguard_results" in delta:
            self.safeguard_results = delta["safeguard_results"]
        usage = dict(payload["usage"]) if isinstance(payload.get("usage"), dict) else {}
        filled = []
        if reported_count(usage.get("output_tokens")) is None:
            usage["output_tokens"] = self._output_estimate()
            filled.append(f"output_tokens={usage['output_tokens']}")
        if is_substitute_input(usage, self.input_estimate, self.fixed_estimate):
            substitute, usage["input_tokens"] = usage["input_tokens"], self._reported_input or self.input_estimate
            filled.append(
                f"input_tokens={usage['input_tokens']} for LiteLLM's count of the messages alone ({substitute})"
            )
        elif reported_count(usage.get("input_tokens")) is None and (
            "input_tokens" in usage or self._reported_input is None
        ):
            usage["input_tokens"] = self._reported_input or self.input_estimate
            filled.append(f"input_tokens={usage['input_tokens']}")
        if "input_tokens" in usage:
            filled += add_trimmed(usage, self.trimmed_tokens)
        payload["usage"] = usage
        return filled_notes("message_delta", filled)

    def _output_estimate(self) -> int:
        """Tokens of the text, thinking and tool input streamed so far."""
        parts: list[str] = []
        for data in self._deltas:
            try:
                delta = from_json(data).get("delta")
            except (ValueError, AttributeError):
                continue
            if isinstance(delta, dict):
                value = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
                if isinstance(value, str):
                    parts.append(value)
        return count_text("".join(parts))


def _payload(event: SSEEvent) -> Any:
    """The event's JSON, None when it has none."""
    try:
        return from_json(event.data) if event.data is not None else None
    except ValueError:
        return None


def _leftover_event(rest: bytes) -> SSEEvent | None:
    """The stream's last bytes as an event, if only its empty line is missing
    (its data is whole JSON); None for half an event or for no event at all."""
    event = parse_event(rest)
    if event.data is None:
        return None
    try:
        from_json(event.data)
    except ValueError:
        return None
    ending = b"\n" if rest.endswith((b"\r", b"\n")) else b"\n\n"
    return parse_event(rest + ending)
