"""Role models with the real Claude Code: a session whose main model thinks (DeepSeek, on its
Anthropic-compatible route) with its background work and its images on other providers' models,
named by its policy entry (background_model, vision_model). Every role's turn answers, and so
does the main model's next turn. (The subagent role: tests/e2e/test_many_models.py.)

What goes to the background model (ANTHROPIC_DEFAULT_HAIKU_MODEL, which the claude-<model>
functions set from background_model), measured with 2.1.332 through the stack on 2026-12-06: in
the interactive TUI, the session's title (a request of its own, the first prompt inside <session>
tags, asking for `{"title": ...}` in output_config.format); nothing in `-p`, and nothing at all
with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC set. Auto mode's classifier goes there too: the
stack asks the background_model of the session's entry (addons/safeguards.py).
"""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from addons.config.policy import load_policy
from litellm_service.aliases import claude_code_environment
from tests.backend import Text, ToolCalls, check_request
from tests.backend.checks import check_messages_request
from tests.backend.classifier import classifier_question, verdicts
from tests.claude import claude_env, run_claude
from tests.conftest import ANTHROPIC_ROUTE_MODELS, POLICY
from tests.e2e.test_capabilities import PNG
from tests.procs import Mitmdump, StabilizerRun, poll_until
from tests.tui import Terminal, onboarded

# Kimi K3 thinks always and wants its reasoning back on the OpenAI-compatible route
# (tests/backend/providers/kimi.py).
KIMI = "kimi-k3"
TITLE_PROMPT = "You are naming a coding session"


def model_id(name: str) -> str:
    """The provider's model id the stand-in sees for a model name of the test config."""
    return ANTHROPIC_ROUTE_MODELS.get(name, (None, name))[1]


def refusals(backend) -> list[str]:
    """Each request the stand-in refused, with its words (the exchange keeps only the status)."""
    refused = []
    for e in backend.exchanges:
        if e.method == "POST" and e.status != 200 and isinstance(e.body, dict):
            quirks = backend.quirks_for(e.body.get("model"))
            if "/messages" in e.path:
                error = check_messages_request(e.body, quirks)
            else:
                error = check_request(e.body, json.dumps(e.body), quirks)
            refused.append(f"{e.body.get('model')}: HTTP {e.status} {error.body if error else ''}")
    return refused


# --- background work ------------------------------------------------------------------------

MAIN = "deepseek-flash-anthropic"  # DeepSeek V4 Flash, thinking, on its Anthropic-compatible route


@pytest.fixture(scope="module")
def background_policy(tmp_path_factory) -> Path:
    """The shipped policy, DeepSeek V4 Flash's background work on Kimi K3."""
    policy = yaml.safe_load(POLICY.read_text())
    policy["models"]["deepseek-flash"]["background_model"] = KIMI
    path = tmp_path_factory.mktemp("background") / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture(scope="module")
def background_run(tmp_path_factory, background_policy, litellm_config, child_env):
    """`stabilizer run`: it sets LiteLLM up to ask auto mode's classifier through the stack."""
    folder = tmp_path_factory.mktemp("stabilizer-background")
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=background_policy, env=child_env).start()
    yield run
    run.stop()


def tool_results(body: dict) -> int:
    """How many tool results a request's history holds, on either route."""
    return sum(
        message.get("role") == "tool"
        or (
            isinstance(message.get("content"), list)
            and any(block.get("type") == "tool_result" for block in message["content"])
        )
        for message in body["messages"]
    )


def asks_title(body: dict) -> bool:
    return TITLE_PROMPT in json.dumps(body.get("system")) + json.dumps(body["messages"][:1])


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux drives the TUI (apt install tmux)")
def test_background_work_on_another_provider_and_the_main_models_next_turn_answer(
    background_run, background_policy, fresh_backend, master_key, tmp_path
):
    # The TUI as a claude-deepseek-flash-anthropic function starts it: its background work on
    # Kimi (the session's title, auto mode's verdicts), its turns on DeepSeek, each a piped
    # command, which auto mode has judged.
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    onboarded(home, cwd)
    limits = load_policy(str(background_policy)).for_model(MAIN, model_id(MAIN))
    roles = claude_code_environment(MAIN, limits, background_run.url)
    assert roles["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == KIMI
    env = claude_env(base_url=background_run.url, auth_token=master_key, model=MAIN, home=home, env_extra=roles)
    # The functions leave nonessential traffic on, and with it off Claude Code names no session;
    # what it would send elsewhere stays off.
    del env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]
    env |= dict.fromkeys(
        ["DISABLE_TELEMETRY", "DISABLE_AUTOUPDATER", "DISABLE_ERROR_REPORTING", "DISABLE_BUG_COMMAND"], "1"
    )

    def model(body: dict):
        if (question := classifier_question(body)) is not None:
            return verdicts(question, lambda call: None)
        if asks_title(body):
            return Text('{"title": "Line counts"}', reasoning="The session counts lines.")
        last = json.dumps(body["messages"][-1])
        if "tool_result" in last or '"role": "tool"' in last:
            return Text(f"Step {tool_results(body)} done.", reasoning="Counted.")
        file = "a.txt" if "a.txt" in last else "b.txt"
        return ToolCalls([("Bash", {"command": f"cat {file} | wc -l", "description": "Count"})], reasoning="Count.")

    fresh_backend.responder = model
    (cwd / "a.txt").write_text("1\n")
    (cwd / "b.txt").write_text("1\n2\n")
    terminal = Terminal(tmp_path / "tmux.sock", env, cwd).start()
    try:
        terminal.wait_for("auto mode on")
        terminal.say("Count the lines of a.txt.")  # the turn ended: the next prompt is not queued into it
        terminal.wait_for("Step 1 done.")
        # Claude Code shows the session's title as the terminal's.
        poll_until(lambda: "Line counts" in terminal.title(), 30, "the session's title")
        terminal.say("And of b.txt?")
        terminal.wait_for("Step 2 done.")
    finally:
        terminal.stop()
    assert not refusals(fresh_backend)
    posts = [e for e in fresh_backend.exchanges if e.method == "POST"]
    background = [e.body for e in posts if e.body["model"] == KIMI]
    assert sum(map(asks_title, background)) == 1
    assert sum(classifier_question(body) is not None for body in background) == 2  # one per piped command
    main = [e.body for e in posts if e.body["model"] == model_id(MAIN)]
    assert len(main) == 4 and len(main) + len(background) == len(posts)
    assert tool_results(main[-1]) == 2  # the next turn holds the whole session


# --- images ---------------------------------------------------------------------------------

IMAGELESS = "deepseek-pro-anthropic"  # DeepSeek V4 Pro, which reads no images by its policy entry
CLAUDE = "claude-sonnet-anthropic"  # reads images, verifies thinking signatures


@contextmanager
def images_to(vision: str, litellm, child_env, folder: Path, *options: str) -> Iterator[Mitmdump]:
    """mitmdump in front of the session's LiteLLM, DeepSeek V4 Pro's images sent to `vision`."""
    policy = yaml.safe_load(POLICY.read_text())
    policy["models"]["deepseek-v4-pro"]["vision_model"] = vision
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    proxy = Mitmdump(litellm.log_file, path, child_env, litellm_config=litellm.config)
    proxy.start(extra_args=tuple(arg for option in options for arg in ("--set", option)))
    try:
        proxy.wait_upstream(litellm.url, timeout=30)
        yield proxy
    finally:
        proxy.stop()


def carries_image(body: dict) -> bool:
    text = json.dumps(body)
    return "image_url" in text or '"type": "image"' in text


@pytest.mark.parametrize("vision", [KIMI, CLAUDE])
def test_a_turn_with_an_image_goes_to_the_vision_model_and_the_main_models_next_turn_answer(
    vision, litellm, child_env, fresh_backend, master_key, tmp_path
):
    # Kimi on the OpenAI-compatible route, or Claude, which verifies thinking signatures.
    with images_to(vision, litellm, child_env, tmp_path) as proxy:
        images_session(proxy, fresh_backend, master_key, tmp_path, vision)


def test_without_provenance_the_vision_models_turn_is_refused_another_models_thinking(
    litellm, child_env, fresh_backend, master_key, tmp_path
):
    # Claude Code keeps its session's thinking (it never learns another model took a turn), so
    # Claude gets DeepSeek's block with DeepSeek's signature and refuses it. (LiteLLM 1.108.7 then
    # sends the turn again without any thinking: it answers, at the cost of a refused call.)
    # The five-model session of tests/e2e/test_many_models.py passes without provenance: on
    # --continue and /model, Claude Code drops other models' thinking itself (measured).
    with images_to(CLAUDE, litellm, child_env, tmp_path, "stabilizer_thinking_provenance=false") as proxy:
        with pytest.raises(AssertionError, match=r"messages\.1\.content\.0: Invalid `signature` in `thinking` block"):
            images_session(proxy, fresh_backend, master_key, tmp_path, CLAUDE)


def images_session(proxy: Mitmdump, fresh_backend, master_key: str, tmp_path: Path, vision_model: str) -> None:
    """DeepSeek reads a screenshot; the turn that brings it goes to the vision model, which thinks
    and calls a tool of its own; DeepSeek takes the turn after (the vision model's thinking and
    tool call in its history, the image as a note), and the next prompt. Every call answers."""
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    (cwd / "shot.png").write_bytes(PNG)
    (cwd / "legend.txt").write_text("red means stop\n")
    vision = model_id(vision_model)

    def model(body: dict):
        last = json.dumps(body["messages"][-1])
        if body["model"] == vision:
            return ToolCalls(
                [("Read", {"file_path": str(cwd / "legend.txt")})],
                text="One red pixel; the legend says what red means.",
                reasoning="A tiny red image: the legend explains it.",
            )
        if "Read shot.png" in last:
            return ToolCalls([("Read", {"file_path": str(cwd / "shot.png")})], reasoning="Look at the file.")
        if "red means stop" in last:
            return Text("A red pixel: stop.", reasoning="The legend is read.")
        return Text("Nothing else.", reasoning="All said.")

    fresh_backend.responder = model
    turns = [("Read shot.png and tell me what it means.", "A red pixel: stop."), ("Anything else?", "Nothing else.")]
    for index, (prompt, expected) in enumerate(turns):
        result = run_claude(
            prompt,
            base_url=proxy.url,
            auth_token=master_key,
            model=IMAGELESS,
            cwd=cwd,
            home=home,
            extra_args=("--continue",) if index else (),
            timeout=180,
        )
        assert not result["is_error"], result.describe()
        assert result["result"] == expected
    assert not refusals(fresh_backend)
    posts = [e.body for e in fresh_backend.exchanges if e.method == "POST"]
    main = model_id(IMAGELESS)
    assert [body["model"] for body in posts] == [main, vision, main, main]
    seen, *after = posts[1:]
    assert carries_image(seen)
    for body in after:
        assert not carries_image(body)
        assert "legend.txt" in json.dumps(body)  # the vision model's tool call
