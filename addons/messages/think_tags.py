"""Reasoning written inside <think> tags in the text, as thinking blocks for Claude Code and back.

Some backends put their reasoning at the start of the answer's text instead of a
field of its own: MiniMax's OpenAI-compatible route unless asked to split it
(platform.minimax.io/docs/api-reference/text-openai-api, read 2026-11-26: the
`<think>` content "must be preserved completely" in the history), llama-server
with `--reasoning-format none`. LiteLLM passes that text on as it is, so Claude
Code would show the tags and the reasoning as the answer.

- On the way to Claude Code a text block that opens with `<think>` becomes a
  thinking block (what is inside the tags) and a text block (the rest); the
  blocks after it move up one index. `ThinkTagSplitter` does it event by event,
  holding back only the few characters that could still be a tag;
  `split_message` does it to a whole message.
- On the way back `joined_message` writes an assistant turn's thinking blocks
  into its text again, inside the tags, so the backend gets its output back as
  it wrote it.
"""

from typing import Any

OPEN, CLOSE = "<think>", "</think>"


def _event(name: str, **fields: Any) -> tuple[str, dict]:
    return name, {"type": name, **fields}


class ThinkTagSplitter:
    """Anthropic stream events in, the same events with <think> text as thinking blocks out.

    `feed(name, payload)` takes one parsed event and returns the events to send in
    its place (none while a block's first characters cannot tell yet).
    """

    def __init__(self) -> None:
        self.shift = 0  # blocks added so far: later upstream indices move up by this
        self.index: int | None = None  # the upstream index of the text block being read
        self.state = "idle"  # undecided (first characters), thinking (inside the tags), text
        self.pending = ""
        self.start: dict | None = None  # the held content_block_start of an undecided block
        self.split = False  # a block was split: tell the caller once
        self.fresh = False  # the block being written has had nothing sent yet

    def feed(self, name: str, payload: dict) -> list[tuple[str, dict]]:
        index = payload.get("index")
        if (
            name == "content_block_start"
            and isinstance(payload.get("content_block"), dict)
            and payload["content_block"].get("type") == "text"
            and isinstance(index, int)
        ):
            self.index, self.state, self.pending, self.start = index, "undecided", "", payload
            return []
        if index is None or index != self.index or self.state == "idle":
            return [(name, self._moved(payload))]
        if name == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.pending += delta["text"]
                return self._advance(final=False)
            return [*self._advance(final=True), (name, self._moved(payload))]
        if name == "content_block_stop":
            out = self._advance(final=True)
            self.state, self.index = "idle", None
            return [*out, (name, self._moved(payload))]
        return [(name, self._moved(payload))]

    def _moved(self, payload: dict) -> dict:
        index = payload.get("index")
        return {**payload, "index": index + self.shift} if isinstance(index, int) and self.shift else payload

    def _advance(self, final: bool) -> list[tuple[str, dict]]:
        """Events for what `pending` can be sent as; `final`: the block's text is complete.

        The newlines that set the tags apart are not part of the reasoning or of the
        answer: they are dropped wherever the stream cuts them."""
        out: list[tuple[str, dict]] = []
        assert self.index is not None  # feed() advances only while a text block is open
        if self.state == "undecided":
            head = self.pending.lstrip()
            if head.startswith(OPEN):
                self.state, self.pending, self.split, self.fresh = "thinking", head[len(OPEN) :], True, True
                out.append(
                    _event(
                        "content_block_start",
                        index=self.index + self.shift,
                        content_block={"type": "thinking", "thinking": "", "signature": ""},
                    )
                )
            elif final or not OPEN.startswith(head):
                assert self.start is not None  # held since the block's content_block_start
                self.state, self.fresh = "text", False
                out.append(("content_block_start", self._moved(self.start)))
            else:
                return out  # still maybe "<thi..."
        if self.fresh:
            self.pending = self.pending.lstrip("\n")
        if self.state == "thinking":
            end = self.pending.find(CLOSE)
            if end < 0:
                # Keep what could be the closing tag's start, and the newlines before it.
                keep = 0
                if not final:
                    keep = next((n for n in range(len(CLOSE) - 1, 0, -1) if self.pending.endswith(CLOSE[:n])), 0)
                    keep += len(self.pending[: len(self.pending) - keep]) - len(
                        self.pending[: len(self.pending) - keep].rstrip("\n")
                    )
                self._send_reasoning(self.pending[: len(self.pending) - keep], out)
                self.pending = self.pending[len(self.pending) - keep :]
                return out
            self._send_reasoning(self.pending[:end].rstrip("\n"), out)
            out.append(_event("content_block_stop", index=self.index + self.shift))
            self.shift += 1
            self.state, self.pending, self.fresh = "text", self.pending[end + len(CLOSE) :].lstrip("\n"), True
            out.append(
                _event("content_block_start", index=self.index + self.shift, content_block={"type": "text", "text": ""})
            )
        if self.state == "text" and self.pending:
            out.append(
                _event(
                    "content_block_delta",
                    index=self.index + self.shift,
                    delta={"type": "text_delta", "text": self.pending},
                )
            )
            self.pending, self.fresh = "", False
        return out

    def _send_reasoning(self, text: str, out: list) -> None:
        if text:  # (when the tags never close, the whole block was reasoning)
            assert self.index is not None  # called from _advance, inside an open text block
            out.append(
                _event(
                    "content_block_delta",
                    index=self.index + self.shift,
                    delta={"type": "thinking_delta", "thinking": text},
                )
            )
            self.fresh = False


def split_message(message: dict) -> bool:
    """A whole message's text blocks that open with <think> split in place; True if any was."""
    content = message.get("content")
    if not isinstance(content, list):
        return False
    blocks, split = [], False
    for block in content:
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        head = text.lstrip() if isinstance(text, str) else ""
        if head.startswith(OPEN) and (end := head.find(CLOSE)) >= 0:
            blocks.append({"type": "thinking", "thinking": head[len(OPEN) : end].strip("\n"), "signature": ""})
            if rest := head[end + len(CLOSE) :].lstrip("\n"):
                blocks.append({**block, "text": rest})
            split = True
        else:
            blocks.append(block)
    if split:
        message["content"] = blocks
    return split


def joined_message(message: dict) -> dict:
    """An assistant turn with its thinking written back into its text, inside the tags; any
    other message as it is."""
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return message
    reasoning = [
        block["thinking"]
        for block in content
        if isinstance(block, dict) and block.get("type") == "thinking" and isinstance(block.get("thinking"), str)
    ]
    if not reasoning:
        return message
    rest = [
        block
        for block in content
        if not (isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"))
    ]
    tagged = f"{OPEN}\n" + "\n".join(reasoning) + f"\n{CLOSE}\n\n"
    if rest and isinstance(rest[0], dict) and rest[0].get("type") == "text" and isinstance(rest[0].get("text"), str):
        rest = [{**rest[0], "text": tagged + rest[0]["text"]}, *rest[1:]]
    else:
        rest = [{"type": "text", "text": tagged.rstrip("\n")}, *rest]
    return {**message, "content": rest}
