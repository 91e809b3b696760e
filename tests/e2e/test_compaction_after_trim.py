"""Once the stack has had to trim, the real Claude Code compacts within two turns (issue 31).

A session over a backend with a small window (48K): one turn reads three files
at once, and their tool results take the request past the trimming budget, so
the request addon trims it (the results are shortened). Then:

- with the aliases' window variables, Claude Code's own count passes its window
  (its estimate of the results, then the usage of a trimmed answer, which
  counts what it sent) and it compacts by itself;
- without them it believes 1M tokens and would not: its next turn carries a
  history that was over the model's window before that turn, which the request
  addon answers "prompt is too long", and Claude Code compacts reactively;
- the same after a switch from a 200K model to the 48K one (`--continue` under
  another model, as `/model` does): the first turn on the small model is answered
  "prompt is too long" and Claude Code compacts.

Either way a summary request reaches the backend within two requests of the
trimmed one (or of the switch), the requests after it are not trimmed, every
turn succeeds, and a word told at the start survives. The interactive Claude
Code (in tmux) does the same without the window variables, and after a `/model`
switch inside the running session from the 200K model (started with its aliases'
variables) to the 48K one.
"""

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from addons.config.policy import load_policy
from addons.messages.tokens import count_text
from addons.request.trim import CUT_NOTE, OMITTED_NOTE, SUMMARY_INSTRUCTION
from litellm_service.aliases import claude_code_environment
from tests.backend import Text, ToolCalls, request_tokens
from tests.claude import claude_env, session_prompt
from tests.procs import StabilizerRun
from tests.tui import Terminal, onboarded

WINDOW = 48_000
SMALL, LARGE = "plain-model", "vllm-qwen3-coder"
POLICY_TEXT = f"""\
models:
  {SMALL}:
    context_window: {WINDOW}
    max_output_tokens: 4096
    safety_margin_tokens: 2048
  {LARGE}:
    context_window: 200000
    max_output_tokens: 4096
"""
# Claude Code's system prompt and tools take about 11.6K tokens: three files of 13K take the
# request past the budget (41856) and past the small model's window.
FILE_TOKENS = 13_000
FILES = ("a.txt", "b.txt", "c.txt")
SECRET = "ORCHID"


def file_text(name: str) -> str:
    line = "Line {} of " + name + " records one more measurement of the project.\n"
    count = FILE_TOKENS // count_text(line.format(1000))
    return "".join(line.format(1000 + i) for i in range(count))


def last_user_text(body: dict) -> str:
    return json.dumps(body["messages"][-1])


def is_summary_request(body: dict) -> bool:
    return SUMMARY_INSTRUCTION in last_user_text(body)


def is_trimmed(body: dict) -> bool:
    text = json.dumps(body)
    return OMITTED_NOTE.split("{}")[1] in text or CUT_NOTE.split("{}")[1].strip() in text


def project_with_files(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "home").mkdir()
    for name in FILES:
        (project / name).write_text(file_text(name))
    return project


def responder(project: Path):
    """The model: reads the files when asked, writes a summary when asked, else takes note."""

    def model(body: dict):
        last = last_user_text(body)
        if is_summary_request(body):
            secret = SECRET if SECRET in json.dumps(body["messages"]) else "nothing"
            return Text(f"<summary>The user had three files read; the word they gave is {secret}.</summary>")
        if '"role": "tool"' in last:
            return Text("Read them.")
        if "Read the files" in last:
            return ToolCalls([("Read", {"file_path": str(project / name)}) for name in FILES])
        if "which word" in last:
            return Text(SECRET if SECRET in json.dumps(body["messages"]) else "I do not know.")
        return Text("Noted.")

    return model


def backend_bodies(backend) -> list[dict]:
    """What the backend received for each model call (not LiteLLM's token counting)."""
    return [e.body for e in backend.exchanges if e.method == "POST" and "messages" in e.body]


def assert_compacted_after(bodies: list[dict], start: int) -> None:
    """A summary request within two requests of request `start`, and no request trimmed after it."""
    trimmed = [i for i, body in enumerate(bodies) if is_trimmed(body)]
    summaries = [i for i, body in enumerate(bodies) if is_summary_request(body)]
    due = [i for i in summaries if start <= i <= start + 2]
    assert due, f"no summary within two requests of request {start}: trimmed {trimmed}, summaries {summaries}"
    after = [i for i in trimmed if i > due[0] and not is_summary_request(bodies[i])]
    sizes = [request_tokens(body) for body in bodies]
    assert not after, f"requests {after} trimmed after the summary at {due[0]} (sizes {sizes})"


@pytest.fixture(scope="module")
def small_window_run(tmp_path_factory, litellm_config, child_env):
    folder = tmp_path_factory.mktemp("stabilizer-compaction-after-trim")
    policy = folder / "stabilizer.yaml"
    policy.write_text(POLICY_TEXT)
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=policy, env=child_env).start()
    yield run, load_policy(str(policy))
    run.stop()


@pytest.mark.parametrize("case", ["aliases", "no-window-variables", "model-switch"])
def test_claude_code_compacts_within_two_turns_of_a_trim(small_window_run, fresh_backend, master_key, tmp_path, case):
    run, policy = small_window_run
    limits = policy.for_model(SMALL)
    environment = claude_code_environment(SMALL, limits, run.url) if case == "aliases" else {}
    project = project_with_files(tmp_path)

    claude = partial(
        session_prompt,
        base_url=run.url,
        auth_token=master_key,
        model=SMALL,
        cwd=project,
        home=tmp_path / "home",
        env_extra=environment,
        timeout=180,
    )

    fresh_backend.responder = responder(project)
    # The stand-in refuses past the small window only for the small model's requests.
    with fresh_backend.quirks(context_window=None if case == "model-switch" else WINDOW):
        first_model = LARGE if case == "model-switch" else SMALL
        claude(f"Remember the word {SECRET}. Just say noted.", model=first_model, first=True)
        claude("Read the files a.txt, b.txt and c.txt.", model=first_model)
        switched = len(backend_bodies(fresh_backend))
        for _ in range(2):
            claude("Just say noted.")
        answer = claude("Now tell me which word I asked you to remember.")

    exchanges = [e for e in fresh_backend.exchanges if e.method == "POST" and "messages" in e.body]
    assert [e.status for e in exchanges] == [200] * len(exchanges)
    bodies = [e.body for e in exchanges]
    trimmed = [i for i, body in enumerate(bodies) if is_trimmed(body)]
    sizes = [request_tokens(body) for body in bodies]
    # The trim that leads to compaction; after a switch, the first request on the small model.
    start = switched if case == "model-switch" else (trimmed or [len(bodies)])[0]
    assert start < len(bodies), f"nothing was trimmed: requests of {sizes} tokens"
    assert_compacted_after(bodies, start)
    assert sizes[-1] < limits.input_budget(limits.max_output_tokens) // 2
    assert answer["result"] == SECRET


def start_terminal(run: StabilizerRun, master_key: str, tmp_path: Path, model: str, env_extra: dict) -> Terminal:
    """Claude Code's TUI on `model` in the project of `tmp_path`, once it shows its prompt."""
    project, home = tmp_path / "project", tmp_path / "home"
    onboarded(home, project)
    env = claude_env(base_url=run.url, auth_token=master_key, model=model, home=home, env_extra=env_extra)
    return Terminal(tmp_path / "tmux.sock", env, project).start()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="the interactive Claude Code runs in tmux")
@pytest.mark.parametrize("case", ["no-window-variables", "model-switch"])
def test_the_tui_compacts_within_two_turns_of_a_trim(small_window_run, fresh_backend, master_key, tmp_path, case):
    """The same in the interactive Claude Code: without the aliases' window variables (it believes
    1M); and in a session started on the 200K model as its claude-<model> function starts it, so
    Claude Code is told a window of about 200K, then switched with `/model` to the 48K model inside
    the running TUI, which leaves that window in force. Either way the files are read on the small
    model, and its request goes past the trimming budget.

    What Claude Code 2.1.332 does after the switch (measured 2026-12-06 from the flows
    `stabilizer run --record` wrote): the trimmed request's usage says 56.5K, far under the ~180K
    it compacts at, so it does not compact; its next turn is answered "prompt is too long" (the
    history before it is over the 48K window) and it compacts reactively, in two rounds: first the
    early messages, keeping the reads (its retry is refused again), then everything, the reads
    shortened in the summary request. The retried turn and the next are not trimmed."""
    run, policy = small_window_run
    project = project_with_files(tmp_path)
    switch = case == "model-switch"
    environment = claude_code_environment(LARGE, policy.for_model(LARGE), run.url) if switch else {}
    fresh_backend.responder = responder(project)
    with fresh_backend.quirks(context_window=WINDOW):
        terminal = start_terminal(run, master_key, tmp_path, LARGE if switch else SMALL, environment)
        try:
            terminal.say(f"Remember the word {SECRET}. Just say noted.")
            if switch:
                terminal.switch_model(SMALL)
            switched = len(backend_bodies(fresh_backend))
            terminal.say("Read the files a.txt, b.txt and c.txt.")
            terminal.say("Just say noted.")
            terminal.say("Now tell me which word I asked you to remember.")
            screen = terminal.screen()
        finally:
            terminal.stop()

    exchanges = [e for e in fresh_backend.exchanges if e.method == "POST" and "messages" in e.body]
    assert [e.status for e in exchanges] == [200] * len(exchanges), screen
    bodies = [e.body for e in exchanges]
    assert {body["model"] for body in bodies[switched:]} == {SMALL}, screen
    trimmed = [i for i, body in enumerate(bodies) if is_trimmed(body)]
    assert trimmed and trimmed[0] >= switched, f"nothing trimmed on {SMALL}: {trimmed}, {switched} before"
    assert_compacted_after(bodies, trimmed[0])
    assert f"● {SECRET}" in screen, screen
