"""A tool call cut by max_tokens, left unfinished for Claude Code, as Anthropic's own stream leaves it.

When generation stops at max_tokens in the middle of a tool call, llama-server and the
OpenAI-compatible providers behind LiteLLM stream the call's arguments as far as they got
(`{"city": "Par`), then a content_block_stop, then stop_reason max_tokens (measured with
llama.cpp 1652066 on both routes, 2026-12-06). Claude Code 2.1.332 then runs that call: its
input check answers "could not be parsed as JSON ... Retry with valid JSON", the model retries
the same long call, and the history keeps the broken input. A block Claude Code sees *without*
its content_block_stop when a max_tokens message_delta comes is one it drops ("that call did not
run and nothing of it was kept"), and it asks the model to resume in smaller pieces (measured).

So the content_block_stop of a tool_use whose streamed JSON is not a whole object is held back
until the message_delta says why the message ended: max_tokens drops it; any other reason (a
model that wrote malformed arguments and ended its turn) sends it on there, right before the
message_delta, and the request side repairs those arguments on the next turn
(addons/request/shaping.py: repaired_input). Every other event passes as it came, so nothing of
the call's input is delayed.
"""

from typing import Any

from addons.wire.json_codec import from_json


def whole_object(text: str) -> bool:
    """Whether the streamed input JSON is a complete object."""
    try:
        return isinstance(from_json(text), dict)
    except ValueError:
        return False


class UnfinishedToolCalls:
    """Tool_use blocks in a stream, and the content_block_stop events of those left unfinished."""

    def __init__(self) -> None:
        self._inputs: dict[Any, list[str]] = {}  # open tool_use block index -> partial_json pieces
        self._given: dict[Any, bool] = {}  # open tool_use block index -> whether its start gave an input object
        self._held: list[bytes] = []  # their content_block_stop events, as they came

    @property
    def tracking(self) -> bool:
        """Whether a tool_use block is open: only then are deltas read."""
        return bool(self._inputs)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def started(self, payload: dict[str, Any]) -> None:
        """A content_block_start."""
        block = payload.get("content_block")
        if isinstance(block, dict) and block.get("type") == "tool_use":
            self._inputs[payload.get("index")] = []
            self._given[payload.get("index")] = isinstance(block.get("input"), dict)

    def delta(self, payload: dict[str, Any]) -> None:
        """A content_block_delta."""
        delta = payload.get("delta")
        pieces = self._inputs.get(payload.get("index"))
        if pieces is not None and isinstance(delta, dict) and isinstance(piece := delta.get("partial_json"), str):
            pieces.append(piece)

    def stopped(self, payload: dict[str, Any], raw: bytes) -> bool:
        """A content_block_stop: True when it is held back (its tool_use's input is not whole).
        Without any partial_json the input is the one its content_block_start gave, if any."""
        index = payload.get("index")
        pieces, given = self._inputs.pop(index, None), self._given.pop(index, False)
        if pieces is None or (whole_object(text) if (text := "".join(pieces)) else given):
            return False
        self._held.append(raw)
        return True

    def release(self) -> bytes:
        """The held events, to send on now (the message did not end at max_tokens)."""
        held, self._held = self._held, []
        return b"".join(held)

    def drop(self) -> int:
        """Forget the held events (the message ended at max_tokens); how many there were."""
        dropped, self._held = len(self._held), []
        return dropped
