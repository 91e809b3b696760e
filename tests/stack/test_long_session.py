"""A long client-driven session through the real stack: the body it sends stays bounded (issue 31).

The client does what Claude Code does: it sends its whole history every turn,
counts its context from the usage of the answers and compacts (asks for a
summary, then goes on from it) when that count passes the window it believes,
or when it is answered "prompt is too long". Each turn brings 8-30 KB of text.
It believes either the aliases' window for the model or 1M tokens (Claude Code
2.1.332 for a name it does not know). Either way no turn fails, the largest
body it sends stays near the model's window, and the backend never receives
more than the window.
"""

import json
import random

import pytest

from addons.config.policy import load_policy
from addons.messages.tokens import count_text, estimate_request
from addons.request.trim import SUMMARY_INSTRUCTION
from litellm_service.aliases import CLAUDE_CODE_OUTPUT_RESERVE_CAP, claude_code_window
from tests.backend import Text, request_tokens
from tests.conftest import POLICY
from tests.procs import post_json

MODEL = "qwen-plus"  # a 128K window in the shipped policy
TURNS = 300
SUMMARY_BUFFER = 13_000  # Claude Code compacts this far below its window, less its output reserve
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def pasted(rng: random.Random, turn: int) -> str:
    """8-30 KB of text, different every turn."""
    size = rng.randint(8_000, 30_000)
    text = f"Turn {turn}: " + " ".join(f"{rng.choice(WORDS)}{rng.randrange(10_000)}" for _ in range(size // 9))
    return text[:size] + "\nJust say noted."


class Client:
    """Claude Code's loop in miniature: whole history every turn, compaction by count or on refusal."""

    def __init__(self, url: str, key: str, window: int, max_tokens: int):
        self.url, self.key, self.max_tokens = url, key, max_tokens
        self.threshold = window - min(max_tokens, CLAUDE_CODE_OUTPUT_RESERVE_CAP) - SUMMARY_BUFFER
        self.history: list[dict] = [{"role": "user", "content": "The task: remember the word ORCHID."}]
        self.history.append({"role": "assistant", "content": "Noted."})
        self.count = 0  # the context as the last answer's usage gave it
        self.largest_body = 0
        self.compactions = {"by count": 0, "on refusal": 0}

    def send(self, messages: list[dict]) -> tuple[int, dict]:
        body = json.dumps({"model": MODEL, "max_tokens": self.max_tokens, "messages": messages}).encode()
        self.largest_body = max(self.largest_body, len(body))
        status, _, answer = post_json(self.url + "/v1/messages", None, {"x-api-key": self.key}, raw=body)
        return status, json.loads(answer)

    def turn(self, text: str) -> None:
        pending = {"role": "user", "content": text}
        if self.count + count_text(text) > self.threshold:
            self.compact("by count")
        status, answer = self.send([*self.history, pending])
        if status == 400 and "prompt is too long" in answer["error"]["message"]:
            self.compact("on refusal")
            status, answer = self.send([*self.history, pending])
        assert status == 200, answer
        usage = answer["usage"]
        self.count = usage["input_tokens"] + usage["output_tokens"]
        self.history += [pending, {"role": "assistant", "content": answer["content"]}]

    def compact(self, why: str) -> None:
        self.compactions[why] += 1
        ask = {"role": "user", "content": f"Your task is to {SUMMARY_INSTRUCTION} so far."}
        status, answer = self.send([*self.history, ask])
        assert status == 200, answer
        summary = answer["content"][0]["text"]
        self.history = [{"role": "user", "content": summary}, {"role": "assistant", "content": "Noted."}]
        self.count = 0


@pytest.mark.parametrize("believed", ["aliases", "1M"])
def test_a_long_session_sends_bounded_bodies_and_never_fails(stack, fresh_backend, master_key, believed):
    limits = load_policy(str(POLICY)).for_model(MODEL)

    def model(body: dict) -> Text:
        if SUMMARY_INSTRUCTION in json.dumps(body["messages"][-1]):
            secret = "ORCHID" if "ORCHID" in json.dumps(body["messages"]) else "nothing"
            return Text(f"Summary: the task was to remember the word {secret}.")
        return Text("Noted.")

    fresh_backend.responder = model
    window = claude_code_window(limits) if believed == "aliases" else 1_000_000
    client = Client(stack.url, master_key, window, limits.max_output_tokens)
    rng = random.Random(31)
    with fresh_backend.quirks(context_window=limits.context_window):
        for turn in range(TURNS):
            client.turn(pasted(rng, turn))

    assert sum(client.compactions.values()) >= 5, client.compactions
    if believed == "1M":
        assert client.compactions["by count"] == 0  # only the refusals led it to compact
    # The whole history is sent only while it is within the window and one turn: about 4 bytes
    # a token, and a turn of at most 30 KB.
    assert client.largest_body < 4 * limits.context_window + 40_000, client.largest_body
    assert max(request_tokens(body) for body in fresh_backend.requests) <= limits.context_window
    assert "ORCHID" in json.dumps(client.history)
    # The history it holds: within the window before its last turn (or refused), and that turn.
    assert estimate_request({"messages": client.history[:-2]}) <= limits.context_window
