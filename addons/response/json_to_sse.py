"""A whole JSON message as the event stream Anthropic would have sent for it.

LiteLLM's mock deployments (and some backends) answer a streaming request with
plain JSON; the client asked for a stream and gets one.
"""

import json
from typing import Any

from addons.wire.sse import encode_event, json_data


def message_to_sse_events(message: dict[str, Any], left_open: int | None = None) -> bytes:
    """The events Anthropic streams for `message` (give it complete usage first); the block at
    index `left_open` gets no content_block_stop (a tool call cut by max_tokens:
    addons/response/tool_cut.py)."""
    usage = message["usage"] if isinstance(message.get("usage"), dict) else {}
    # message_start carries the message before any output: no content, no stop yet, no verdicts
    # on its tool calls (auto mode's safeguard_results come with the stop, in message_delta).
    start = {key: value for key, value in message.items() if key != "safeguard_results"}
    start |= {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 0}
    events = [encode_event("message_start", json_data({"type": "message_start", "message": start}))]
    for index, block in enumerate(message.get("content") or []):
        for name, payload in _block_events(block):
            if not (index == left_open and name == "content_block_stop"):
                events.append(encode_event(name, json_data({"type": name, "index": index, **payload})))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    if "safeguard_results" in message:
        delta["safeguard_results"] = message["safeguard_results"]
    events.append(encode_event("message_delta", json_data({"type": "message_delta", "delta": delta, "usage": usage})))
    events.append(encode_event("message_stop", json_data({"type": "message_stop"})))
    return b"".join(events)


def _block_events(block: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload without type and index) for one content block."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": block.get("text") or ""}]
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": arguments}]
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking") or ""}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        # redacted_thinking, tool results and newer kinds come whole in the start event.
        start, deltas = block, []
    return [
        ("content_block_start", {"content_block": start}),
        *(("content_block_delta", {"delta": delta}) for delta in deltas),
        ("content_block_stop", {}),
    ]
