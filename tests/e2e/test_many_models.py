"""The real Claude Code on one session written by five models, both routes, with --continue:
DeepSeek's Anthropic-compatible route, a second Anthropic-compatible provider (Qwen), a thinking
model on the OpenAI-compatible route (Kimi), Anthropic's own Claude (it verifies thinking
signatures), then back to DeepSeek. Claude Code drops the other models' thinking from the
history it sends; the stand-ins enforce each provider's rule (tests/backend/). Every turn answers.

Each stand-in also writes tool-call ids in its provider's form, and Claude and OpenAI refuse
ids outside their rules: Kimi's `functions.Read:2` reaches Claude (LiteLLM 1.108.14 already
rewrites it to `functions_Read_2` on its way to Claude Code), and vLLM's 46-character ids reach
an OpenAI model, which takes 40 at most, unless the stack maps them.
"""

import dataclasses
import json

import pytest
import yaml

from tests.backend import PROFILES, Text, ToolCalls, check_request
from tests.backend.providers import MODEL_QUIRKS
from tests.claude import run_claude
from tests.conftest import POLICY
from tests.procs import StabilizerRun

# (model name Claude Code sends, the provider's model id the stand-in sees, its route)
SESSION = [
    ("deepseek-flash-anthropic", "deepseek-flash", "anthropic"),
    ("qwen3.7-plus-anthropic", "qwen3.7-plus", "anthropic"),
    ("kimi-k3", "kimi-k3", "openai"),
    ("claude-sonnet-anthropic", "claude-sonnet-4-6", "anthropic"),
    ("deepseek-flash-anthropic", "deepseek-flash", "anthropic"),
]


@pytest.fixture(scope="module")
def run_with_an_openai_model(tmp_path_factory, litellm_config, child_env):
    """The shipped policy with an entry for an OpenAI model: OpenAI's rule for tool-call ids."""
    folder = tmp_path_factory.mktemp("stabilizer-openai-model")
    shipped = yaml.safe_load(POLICY.read_text())
    shipped["models"]["gpt-4.1"] = {"tool_ids": "openai"}
    policy = folder / "policy.yaml"
    policy.write_text(yaml.safe_dump(shipped))
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=policy, env=child_env).start()
    yield run
    run.stop()


@pytest.fixture(scope="module")
def run_without_the_note(tmp_path_factory, litellm_config, child_env):
    """The stack with DeepSeek's turns left as Claude Code sends them: require_reasoning off."""
    folder = tmp_path_factory.mktemp("stabilizer-without-note")
    shipped = yaml.safe_load(POLICY.read_text())
    shipped["models"]["deepseek-flash"]["thinking"]["require_reasoning"] = False
    policy = folder / "policy.yaml"
    policy.write_text(yaml.safe_dump(shipped))
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=policy, env=child_env).start()
    yield run
    run.stop()


def answers_after_one_read(step: int, path: str):
    """A model that reads `path` once, then answers: the turn's own tool round trip."""

    def model(body: dict):
        last = body["messages"][-1]
        content = last.get("content")
        after_result = last["role"] == "tool" or (
            isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)
        )
        if after_result:
            return Text(f"Step {step} done.", reasoning=f"Step {step}: the file is read.")
        return ToolCalls([("Read", {"file_path": path})], text=f"Reading for step {step}.", reasoning="Read it.")

    return model


def test_one_session_across_five_models_answers_every_turn(stack_run, fresh_backend, master_key, tmp_path):
    sent = five_models(stack_run, fresh_backend, master_key, tmp_path)
    # Kimi's call reached Claude, in a form Claude takes (the stand-in refuses any other).
    claude = sent[SESSION.index(("claude-sonnet-anthropic", "claude-sonnet-4-6", "anthropic"))]
    ids = [block["id"] for m in claude["messages"] for block in blocks(m) if block.get("type") == "tool_use"]
    assert any(tool_id.startswith("functions_Read_2") for tool_id in ids), ids


# vLLM writes 46-character tool-call ids; the next turn goes to an OpenAI model.
VLLM_THEN_OPENAI = [
    ("vllm-qwen3-coder", "vllm-qwen3-coder", "openai"),
    ("gpt-4.1", "gpt-4.1", "openai"),
]


def test_ids_another_model_wrote_reach_an_openai_model_in_its_form(
    run_with_an_openai_model, fresh_backend, master_key, tmp_path
):
    sent = five_models(run_with_an_openai_model, fresh_backend, master_key, tmp_path, VLLM_THEN_OPENAI)
    ids = [call["id"] for m in sent[-1]["messages"] for call in m.get("tool_calls") or []]
    assert ids and all(len(tool_id) <= 40 for tool_id in ids), ids


def test_without_the_openai_rule_the_openai_model_refuses_the_history(stack_run, fresh_backend, master_key, tmp_path):
    # The shipped policy has no entry for the OpenAI model: vLLM's ids reach it as they are, and
    # the refusal reaches Claude Code naming the setting (LiteLLM 1.108.14 files it under
    # ContextWindowExceededError, which alone is no "prompt is too long": addons/errors/upstream.py).
    with pytest.raises(AssertionError, match=r"(?s)^gpt-4\.1: .*string too long.*tool_ids"):
        five_models(stack_run, fresh_backend, master_key, tmp_path, VLLM_THEN_OPENAI)
    refused = next(e for e in fresh_backend.exchanges if e.status == 400)
    quirks = dataclasses.replace(PROFILES["openai"], **MODEL_QUIRKS["gpt-"])
    error = check_request(refused.body, json.dumps(refused.body), quirks)
    assert error is not None and "string too long" in error.body["error"]["message"]


def test_without_reasoning_for_other_models_turns_the_session_sticks(
    run_without_the_note, fresh_backend, master_key, tmp_path
):
    # The stuck session: the turn back to DeepSeek is refused.
    with pytest.raises(AssertionError, match="must be passed back to the API"):
        five_models(run_without_the_note, fresh_backend, master_key, tmp_path)


def blocks(message: dict) -> list:
    content = message.get("content")
    return content if isinstance(content, list) else []


def five_models(
    stack_run: StabilizerRun, fresh_backend, master_key: str, tmp_path, session: list = SESSION
) -> list[dict]:
    """The `session` (model name, model id, route), asserting every turn answers; the last
    request each model received."""
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    last_requests = []
    for step, (model, model_id, route) in enumerate(session):
        path = cwd / f"part{step}.txt"
        path.write_text(f"piece {step}\n")
        fresh_backend.reset()
        fresh_backend.responder = answers_after_one_read(step, str(path))
        result = run_claude(
            f"Step {step}: read part{step}.txt.",
            base_url=stack_run.url,
            auth_token=master_key,
            model=model,
            cwd=cwd,
            home=home,
            extra_args=["--continue"] if step else [],
            timeout=180,
        )
        assert not result["is_error"], f"{model}: {result.describe()}"
        assert result["result"] == f"Step {step} done.", model
        wanted = "/v1/messages" if route == "anthropic" else "/v1/chat/completions"
        sent = [e for e in fresh_backend.exchanges if e.method == "POST" and e.path.startswith(wanted)]
        assert sent and all(e.status == 200 for e in sent), (model, [e.status for e in sent])
        assert {e.body["model"] for e in sent} == {model_id}
        # The whole session so far went to this model: each earlier step's tool turn is in it.
        last = sent[-1].body
        assert sum(f"part{earlier}.txt" in str(last["messages"]) for earlier in range(step + 1)) == step + 1
        last_requests.append(last)
    return last_requests


def first_user_text(body: dict) -> str:
    content = next(message for message in body["messages"] if message["role"] == "user")["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_a_subagent_on_another_provider_and_the_main_models_next_turn_answer(
    stack_run, fresh_backend, master_key, tmp_path
):
    # DeepSeek thinks and calls a subagent, which runs on Kimi (OpenAI route, wants reasoning
    # back); then DeepSeek's next prompt. (Claude Code -p sends no background work to
    # ANTHROPIC_DEFAULT_HAIKU_MODEL here, so that role is not exercised.)
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    subtask = "SUBTASK-7: report the magic number"

    def model(body: dict):
        if subtask in first_user_text(body):  # the subagent's own conversation
            return Text("The magic number is 42.", reasoning="The subagent knows it.")
        last = body["messages"][-1]
        content = last.get("content")
        if isinstance(content, list) and any(block.get("type") == "tool_result" for block in content):
            return Text("The subagent reported 42.", reasoning="Its report is in.")
        if "And now?" in str(content):
            return Text("Still 42.", reasoning="Nothing changed.")
        agent = {"description": "find it", "prompt": subtask, "subagent_type": "general-purpose"}
        return ToolCalls([("Agent", {**agent, "run_in_background": False})], reasoning="A subagent should do it.")

    fresh_backend.responder = model
    roles = {"CLAUDE_CODE_SUBAGENT_MODEL": "kimi-k3"}
    for prompt, expected, extra in [
        ("Ask a subagent for the magic number.", "The subagent reported 42.", []),
        ("And now?", "Still 42.", ["--continue"]),
    ]:
        result = run_claude(
            prompt,
            base_url=stack_run.url,
            auth_token=master_key,
            model="deepseek-flash-anthropic",
            cwd=cwd,
            home=home,
            extra_args=extra,
            env_extra=roles,
            timeout=180,
        )
        assert not result["is_error"], result.describe()
        assert result["result"] == expected
    posts = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert all(e.status == 200 for e in posts), [(e.body.get("model"), e.status) for e in posts]
    subagent = [e for e in posts if subtask in first_user_text(e.body)]
    assert subagent and {e.body["model"] for e in subagent} == {"kimi-k3"}
    main = [e for e in posts if e.body["model"] == "deepseek-flash"]
    assert len(main) >= 3  # the call, the answer after its result, the next prompt
