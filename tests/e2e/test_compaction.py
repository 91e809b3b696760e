"""Claude Code compacts by itself, in time, with the environment `stabilizer aliases` gives it.

A long session against a backend with a small window (48K): each prompt adds
about 6000 tokens. With the window the aliases tell it and the usage figures
the response addon makes true, the real Claude Code must reach its own
auto-compact (a summary request) before the request addon would have to trim
the history or the backend would refuse it, and every turn must succeed. A
word told early in the session must survive into the turn after the summary.

Run for a backend that reports its usage and for one that streams `usage: null`
(LiteLLM then substitutes a count of the messages alone).
"""

import json
from functools import partial

import pytest

from addons.config.policy import load_policy
from addons.messages.tokens import count_text
from addons.request.trim import OMITTED_NOTE
from litellm_service.aliases import claude_code_environment
from tests.backend import Text, request_tokens
from tests.claude import session_prompt
from tests.procs import StabilizerRun

WINDOW = 48_000
POLICY_TEXT = f"""\
models:
  plain-model:
    context_window: {WINDOW}
    max_output_tokens: 4096
    safety_margin_tokens: 2048
"""
TURN_TOKENS = 6000
MOST_PROMPTS = 8  # compaction is due by the fourth; the cap only bounds a failing run
SECRET = "ORCHID"
# Claude Code's request for a summary opens its last user message with this (2.1.x).
SUMMARY_REQUEST = "create a detailed summary of the conversation"


def report(turn: int) -> str:
    """About TURN_TOKENS tokens of text the model is asked only to acknowledge."""
    sentence = "Paragraph {} of report " + str(turn) + " describes one more detail of the project at length."
    count = TURN_TOKENS // count_text(sentence.format(1000))
    return " ".join(sentence.format(1000 + i) for i in range(count)) + "\nJust say noted."


def last_user_text(body: dict) -> str:
    return json.dumps(body["messages"][-1])


def is_summary_request(body: dict) -> bool:
    return SUMMARY_REQUEST in last_user_text(body).lower()


def model(body: dict) -> Text:
    if is_summary_request(body):
        secret = SECRET if SECRET in json.dumps(body["messages"]) else "nothing"
        return Text(f"<summary>The user shared reports; the word they gave is {secret}.</summary>")
    if "which word" in last_user_text(body):
        return Text(SECRET if SECRET in json.dumps(body["messages"]) else "I do not know.")
    return Text("Noted.")


@pytest.fixture(scope="module")
def small_window_run(tmp_path_factory, litellm_config, child_env):
    folder = tmp_path_factory.mktemp("stabilizer-compaction")
    policy = folder / "stabilizer.yaml"
    policy.write_text(POLICY_TEXT)
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=policy, env=child_env).start()
    yield run, load_policy(str(policy)).for_model("plain-model")
    run.stop()


@pytest.mark.parametrize("usage", ["real", "null"])
def test_claude_code_compacts_before_the_history_would_be_trimmed(
    small_window_run, fresh_backend, master_key, tmp_path, usage
):
    run, limits = small_window_run
    environment = claude_code_environment("plain-model", limits, run.url)
    (tmp_path / "project").mkdir()
    (tmp_path / "home").mkdir()

    claude = partial(
        session_prompt,
        base_url=run.url,
        auth_token=master_key,
        model="plain-model",
        cwd=tmp_path / "project",
        home=tmp_path / "home",
        env_extra=environment,
        timeout=180,
    )

    fresh_backend.responder = model
    with fresh_backend.quirks(usage=usage, context_window=WINDOW):
        claude(f"Remember the word {SECRET}. Just say noted.", first=True)
        for turn in range(MOST_PROMPTS):
            claude(report(turn))
            if any(is_summary_request(body) for body in fresh_backend.requests):
                break
        answer = claude("Now tell me which word I asked you to remember.")

    exchanges = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert [e.status for e in exchanges] == [200] * len(exchanges)
    bodies = [e.body for e in exchanges]
    summaries = [i for i, body in enumerate(bodies) if is_summary_request(body)]
    assert summaries, f"no compaction in {len(bodies)} requests of up to {max(map(request_tokens, bodies))} tokens"
    trimmed = [i for i, body in enumerate(bodies) if OMITTED_NOTE.split("{}")[1] in json.dumps(body)]
    assert not trimmed, f"requests {trimmed} were trimmed; the compaction came at request {summaries[0]}"
    assert request_tokens(bodies[-1]) < request_tokens(bodies[summaries[0]])
    assert answer["result"] == SECRET
