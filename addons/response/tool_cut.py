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

Without streaming (Claude Code's fallback when a stream fails) the cut call comes whole:
llama-server's Messages route gives it `input: {}`, and Claude Code 2.1.332 runs it as it is (measured:
Read "The required parameter `file_path` is missing"); LiteLLM's translation of a chat completion
answers 500 "Failed to parse tool call arguments" when its repair cannot close them, and Claude
Code sends the same request again and again, nine times in three minutes (measured with llama.cpp
1652066 and LiteLLM 1.108.14, 2026-12-06). So a whole message that stopped at max_tokens loses the
tool_use it ended in (`cut_call`), and that 500, when the arguments are the start of a JSON object
(`cut_short`), becomes the message stopped at max_tokens without the call (`cut_call_message`);
Claude Code then runs nothing and asks the model to go on ("Output token limit hit. Resume
directly", measured on both routes). A whole message answering a streaming request becomes events
with that block left open, as the stream path leaves it.
"""

import json
import re
import uuid
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


def cut_call(message: dict[str, Any]) -> int | None:
    """The index of the tool_use block a whole message was cut in: its last block, when the
    message stopped at max_tokens (a block after it would mean generation went past it)."""
    content = message.get("content")
    if message.get("stop_reason") != "max_tokens" or not isinstance(content, list) or not content:
        return None
    last = content[-1]
    return len(content) - 1 if isinstance(last, dict) and last.get("type") == "tool_use" else None


# What is left of a JSON value cut inside a literal or a number (`tr`, `-1.`, `2e+`), where a
# value was expected; and of a number cut after its digits, where the parser read the number whole.
_CUT_VALUE = re.compile(r"t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?|-?\d*(?:\.\d*)?(?:[eE][+-]?\d*)?")
_CUT_NUMBER_TAIL = re.compile(r"(?:\.\d*)?(?:[eE][+-]?\d*)?")


def cut_short(text: str) -> bool:
    """Whether `text` is the start of a JSON object that stops early (a cut), rather than
    something that is not JSON however it goes on (single quotes, a bare word)."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        rest = text[error.pos :].rstrip()
        if error.msg.startswith("Unterminated string"):
            return True  # the string runs to the end
        if error.msg.startswith("Invalid \\uXXXX escape"):  # pos: at the u
            return re.fullmatch(r"\\u[0-9a-fA-F]{0,4}", text[error.pos - 1 :]) is not None
        if error.msg == "Expecting value":
            return _CUT_VALUE.fullmatch(rest) is not None
        if error.msg == "Expecting ',' delimiter" and text[error.pos - 1].isdigit():
            return _CUT_NUMBER_TAIL.fullmatch(rest) is not None
        return not rest
    return False


# LiteLLM's words (1.108.14: parse_tool_call_arguments in litellm_core_utils/prompt_templates/
# common_utils.py) when its translation of a chat completion meets tool arguments it can neither
# parse nor close: the whole answer becomes a 500.
_UNPARSED_ARGUMENTS = re.compile(
    r"Failed to parse tool call arguments for tool '(?P<tool>[^']*)' \([^)]*\)\. Error: .*?\. Arguments: (?P<arguments>.*)",
    re.DOTALL,
)


def cut_call_refused(message: str) -> str | None:
    """The tool's name, when `message` is LiteLLM's refusal of a call whose arguments were cut
    short (never of arguments that are malformed: that answer ended, and stays an error)."""
    match = _UNPARSED_ARGUMENTS.search(message)
    return match["tool"] if match and cut_short(match["arguments"]) else None


def cut_call_message(model: str) -> dict[str, Any]:
    """What Claude Code goes on from in place of that refusal: the answer stopped at max_tokens,
    without the call (its thinking and text went down with LiteLLM's translation); usage is
    filled in as for any message (addons/response/usage.py)."""
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {},
    }
