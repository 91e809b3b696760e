"""The requests the benchmarks send: the recorded Claude Code request and long sessions built on it.

A long session is what Claude Code resends on every turn: the recorded
request's system prompt and 24 tools, then hundreds of turns in which the
assistant calls a tool and the user turn answers it. Tool results are numbered
source lines as the Read tool returns them, taken from the Python standard
library (real code for the tokenizer, the same on every machine with the same
Python); now and then a mid-conversation system message (Claude Code 2.1's
reminders, which the bundle folds) and `cache_control` on the last turn, as
Claude Code sends. Everything is deterministic: the same arguments give the
same bytes.
"""

import json
import sysconfig
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import orjson

from addons.request.trim import SUMMARY_INSTRUCTION

DATA = Path(__file__).resolve().parent / "data"
RECORDED_PATH = DATA / "claude_code_request.json"
ROUNDTRIP_PATH = DATA / "claude_code_tool_roundtrip_request.json"
HEADERS_PATH = DATA / "claude_code_request.headers.json"

RESULT_CHARS = 6000  # the largest tool result of a generated turn
SYSTEM_MESSAGE_EVERY = 25  # turns between two mid-conversation system messages
NEXT_TURN_RESULT_CHARS = 1500


def recorded() -> dict:
    """The real 76 KB first request of a Claude Code session ("say hi")."""
    return json.loads(RECORDED_PATH.read_text())


def roundtrip() -> dict:
    """The real request after one tool call (Read) and its answer."""
    return json.loads(ROUNDTRIP_PATH.read_text())


def claude_code_headers() -> dict[str, str]:
    """The recorded request's headers, less those the client sets itself."""
    skip = {"content-type", "connection", "accept-encoding", "authorization", "host", "content-length"}
    return {k: v for k, v in json.loads(HEADERS_PATH.read_text()).items() if k.lower() not in skip}


def encode(request: dict) -> bytes:
    """Compact JSON, as Claude Code (JSON.stringify) sends it."""
    return orjson.dumps(request)


@cache
def _source_lines() -> tuple[str, ...]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines: list[str] = []
    for path in sorted(stdlib.glob("*.py")):
        try:
            lines += path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
    return tuple(lines)


def _tool_results(salt: str) -> Iterator[tuple[str, str]]:
    """(file path, Read-tool output) pieces of the standard library, endlessly."""
    lines = _source_lines()
    position, piece = 0, 0
    while True:
        out, size, first = [], 0, position
        # Sizes vary from a few hundred bytes to RESULT_CHARS, as real reads do.
        limit = 300 + (piece * 2654435761) % (RESULT_CHARS - 300)
        while size < limit:
            line = f"{position - first + 1}\t{lines[position % len(lines)]}"
            out.append(line)
            size += len(line) + 1
            position += 1
        piece += 1
        yield f"/work/project/{salt}src/module_{piece}.py", "\n".join(out)


def _turn(index: int, salt: str, path: str, result: str) -> list[dict]:
    tool_id = f"toolu_{salt}{index:05d}"
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": f"Let me look at {path} to see how step {index} is handled."},
                {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": path}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": result}]},
    ]


def long_session(target_bytes: int, salt: str = "") -> dict:
    """A request of about `target_bytes` (compact JSON): the recorded start plus generated turns.

    `salt` makes every message distinct from another salt's, so no estimate is cached.
    """
    request = roundtrip()
    messages = request["messages"]
    for message in messages:  # cache_control goes on the last turn only
        for block in message["content"] if isinstance(message["content"], list) else ():
            block.pop("cache_control", None)
    size = len(encode(request))
    results = _tool_results(salt)
    index = 0
    while size < target_bytes:
        path, result = next(results)
        added = _turn(index, salt, path, result)
        if index and index % SYSTEM_MESSAGE_EVERY == 0:
            added.append({"role": "system", "content": f"<reminder {salt}{index}> The task list was updated."})
        messages += added
        size += sum(len(encode(message)) + 1 for message in added)
        index += 1
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return request


def next_turn(request: dict, turn: int) -> dict:
    """The same session one turn later: its history plus an assistant tool call and the answer."""
    tool_id = f"toolu_next{turn:05d}"
    previous = request["messages"]
    last = previous[-1]
    # Claude Code moves cache_control to the newest turn.
    unmarked = {
        **last,
        "content": [{k: v for k, v in block.items() if k != "cache_control"} for block in last["content"]],
    }
    output = "\n".join(
        f"tests/test_module_{turn}_{i}.py::test_case_{i} PASSED" for i in range(NEXT_TURN_RESULT_CHARS // 50)
    )
    added = [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": f"pytest -q -k step{turn}"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_id,
                    "content": output,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    return {**request, "messages": [*previous[:-1], unmarked, *added]}


def with_reasoning(request: dict) -> dict:
    """The request as a thinking model's session has it: each assistant turn starts with its reasoning."""

    def reasoned(message: dict) -> dict:
        if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
            return message
        thought = {"type": "thinking", "thinking": f"Next: {len(message['content'])} blocks to write.", "signature": ""}
        return {**message, "content": [thought, *message["content"]]}

    return {**request, "messages": [reasoned(message) for message in request["messages"]]}


def unique_first_request(base: dict, number: int) -> dict:
    """The recorded request as another session would send it: its own question."""
    messages = base["messages"]
    first = messages[0]
    content = [*first["content"][:-1], {**first["content"][-1], "text": f"Question {number}: say hi."}]
    return {**base, "messages": [{**first, "content": content}, *messages[1:]]}


def as_compaction_request(messages: list[dict]) -> list[dict]:
    """`messages` as Claude Code's request for a summary: its instruction added to the last user
    message (addons/request/trim.py), the one request a history past the window still gets
    trimmed for."""
    last = messages[-1]
    content = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
    instruction = {"type": "text", "text": f"Your task is to {SUMMARY_INSTRUCTION} so far."}
    return [*messages[:-1], {**last, "content": [*content, instruction]}]


def as_summary_request(request: dict) -> dict:
    """`request` with its messages as_compaction_request makes them."""
    return {**request, "messages": as_compaction_request(request["messages"])}
