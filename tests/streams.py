"""Read an Anthropic Messages event stream the way a client does, for assertions."""

import json
from typing import Any

from addons.wire.sse import SSEDecoder


def streamed_message(content: bytes) -> dict[str, Any]:
    """The message an Anthropic client builds from `content`: content blocks in order with
    their text, thinking and tool input joined, the last signature_delta's signature (Claude
    Code 2.1.332 and Anthropic's SDKs assign it, they do not join), the last usage seen, and
    the indexes of the blocks that never got their content_block_stop (`unfinished`)."""
    decoder = SSEDecoder()
    events = decoder.feed(content)
    events += decoder.finish()[0]
    message: dict[str, Any] = {"content": [], "usage": {}}
    stopped = set()
    for event in events:
        if event.data is None or event.data == b"[DONE]":
            continue
        payload = json.loads(event.data)
        kind = payload.get("type")
        if kind == "message_start":
            message["usage"] = dict(payload["message"].get("usage") or {})
        elif kind == "content_block_start":
            message["content"].append(dict(payload["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][payload["index"]], payload["delta"]
            if "signature" in delta:
                block["signature"] = delta["signature"]
            for field, into in (("text", "text"), ("thinking", "thinking"), ("partial_json", "input_json")):
                if field in delta:
                    block[into] = (block.get(into) or "") + delta[field]
        elif kind == "content_block_stop":
            stopped.add(payload["index"])
        elif kind == "message_delta":
            message["usage"].update(payload.get("usage") or {})
            message["stop_reason"] = (payload.get("delta") or {}).get("stop_reason")
    message["unfinished"] = [index for index in range(len(message["content"])) if index not in stopped]
    return message
