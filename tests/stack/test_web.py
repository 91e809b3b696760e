"""Live inspection: `stabilizer run --web` (mitmweb with the addons), flow marking and the flow cap.

The addons in process (the marker, the cap, the keys hidden): tests/addons/test_inspection.py.
"""

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from addons.views.turn_view import NOT_KEPT
from tests.backend import ToolCalls
from tests.backend.classifier import classifier_question, verdicts
from tests.conftest import POLICY
from tests.procs import LineReader, free_port, get_json, post_json

CAP = 5


# --- mitmweb, for real -----------------------------------------------------------------


def stabilizer_web(options: list[str], child_env: dict, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`stabilizer run --web` with `options`, until the test is done; yields (proxy url, web url, token)."""
    port, web_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "stabilizer"),
            "run",
            "--web",
            "--port",
            str(port),
            "--web-port",
            str(web_port),
            *options,
            "--log-dir",
            str(tmp_path),
            "-q",
        ],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        stderr = LineReader(process.stderr)
        stderr.wait_for("ready on", timeout=90)
        line = stderr.wait_for("mitmweb:", timeout=5)
        match = re.search(rf"http://127\.0\.0\.1:{web_port}/\?token=(\S+)", line)
        assert match, line
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture
def web(litellm, child_env, tmp_path):
    """`stabilizer run --web` attached to the session's LiteLLM; yields (proxy url, web url, token)."""
    if litellm.process.poll() is not None:
        litellm.start()
    options = ["--max-flows", str(CAP), "--attach-log", str(litellm.log_file)]
    yield from stabilizer_web(options, child_env, tmp_path)


def flows(web_url: str, token: str) -> list[dict]:
    status, body = get_json(web_url + "/flows", {"authorization": f"Bearer {token}"})
    assert status == 200, body
    return body


def test_web_shows_the_marked_flow_to_the_token_holder_only(web, master_key, fresh_backend):
    proxy_url, web_url, token = web
    # qwen-plus: its backend refuses max_tokens above 8192, so the request is capped.
    request = {
        "model": "qwen-plus",
        "max_tokens": 32000,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    status, _, body = post_json(proxy_url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body

    (flow,) = [flow for flow in flows(web_url, token) if flow["request"]["path"] == "/v1/messages"]
    assert "stripped keys: thinking" in flow["comment"]
    assert "capped max_tokens 32000->8192" in flow["comment"]
    assert flow["marked"]  # the wrench mitmweb shows in its list
    # The key it went upstream with is not what mitmweb shows.
    assert ["X-Api-Key", "[redacted]"] in flow["request"]["headers"] and master_key not in str(flow)
    # The original was kept (mitmweb's view was there when the addons were loaded): the
    # stabilizer view sets what Claude Code sent against what went upstream.
    status, view = get_json(
        web_url + f"/flows/{flow['id']}/request/content/stabilizer.json", {"authorization": f"Bearer {token}"}
    )
    assert status == 200 and view["view_name"].lower() == "stabilizer", view
    assert NOT_KEPT not in view["text"] and re.search(r"max_tokens\W+32000\W+8192", view["text"]), view["text"]

    assert get_json(web_url + "/flows")[0] == 403
    assert get_json(web_url + "/flows", {"authorization": "Bearer wrong"})[0] == 403
    assert get_json(web_url + "/flows?token=wrong")[0] == 403
    assert get_json(web_url + f"/flows?token={token}")[0] == 200


def test_web_keeps_at_most_the_cap_and_lists_no_status_poll(web):
    proxy_url, web_url, token = web
    for _ in range(3):
        assert get_json(proxy_url + "/_stabilizer/status")[0] == 200
    assert flows(web_url, token) == []  # the stack's own endpoint (and `stabilizer run`'s polls)
    for _ in range(CAP + 3):
        assert get_json(proxy_url + "/")[0] == 200
    assert [flow["request"]["path"] for flow in flows(web_url, token)] == ["/"] * CAP


def test_token_is_not_in_the_process_list(web):
    _, _, token = web
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "mitmweb" in listing and token not in listing


@pytest.fixture
def web_with_litellm(litellm_config, child_env, tmp_path):
    """`stabilizer run --web` starting its own LiteLLM, as a user runs it: auto mode answered."""
    options = ["--litellm-config", str(litellm_config), "--policy", str(POLICY), "--env-file", str(tmp_path / "env")]
    yield from stabilizer_web(options, child_env, tmp_path)


def test_web_shows_auto_modes_verdicts(web_with_litellm, master_key, fresh_backend):
    proxy_url, web_url, token = web_with_litellm

    def respond(body: dict):
        if (question := classifier_question(body)) is not None:
            return verdicts(question, lambda call: "it deletes the home folder")
        return ToolCalls([("Bash", {"command": "rm -rf ~ | tee log"})])

    fresh_backend.responder = respond
    request = {
        "model": "deepseek-flash",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "clean up"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "safeguards": [{"type": "dangerous_tool_use", "classifier_context": {"permission_mode": "auto"}}],
    }
    status, _, body = post_json(proxy_url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body
    # A JSON answer carries the verdicts at its top level, as Anthropic's does.
    (result,) = json.loads(body)["safeguard_results"]
    (tool_use_id,) = result["status"]["tool_uses"]
    assert result["status"]["tool_uses"][tool_use_id]["explanation"] == "it deletes the home folder"

    shown = [flow for flow in flows(web_url, token) if flow["request"]["path"] == "/v1/messages"]
    turn = next(flow for flow in shown if "flagged: " in flow["comment"])
    assert "auto mode]" in turn["comment"]  # the filter word: ~comment "auto mode"
    assert f"auto mode, deepseek-flash on {tool_use_id}: flagged: it deletes the home folder" in turn["comment"]
    # The classifier's own call is a flow of its own, named for the turn it judges.
    assert any("auto mode's classifier for deepseek-flash's turn: deepseek-flash" in flow["comment"] for flow in shown)
