"""The whole stack with real processes: LiteLLM, mitmdump with the addons, `stabilizer run`."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from addons.errors.anthropic import is_anthropic_error
from tests.backend import default_reasoning
from tests.procs import LineReader, free_port, get_json, listening, poll_until, post_json, running_line

HI = {"model": "deepseek-flash", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}


# A thinking model answers with its reasoning first (the stand-in's DeepSeek V4); one that does not, text alone.
ROUND_TRIP_MODELS = [("deepseek-flash", ["thinking", "text"]), ("qwen-plus", ["text"])]


@pytest.mark.parametrize("model, blocks", ROUND_TRIP_MODELS)
def test_non_streaming_round_trip(anthropic_client, fresh_backend, model, blocks):
    message = anthropic_client.messages.create(**{**HI, "model": model})
    assert [block.type for block in message.content] == blocks
    assert message.content[-1].text
    received = fresh_backend.requests[-1]
    assert received["messages"][-1]["content"] in ("hi there", [{"type": "text", "text": "hi there"}])
    if "thinking" in blocks:
        assert message.content[0].thinking == default_reasoning(received)


@pytest.mark.parametrize("model, blocks", ROUND_TRIP_MODELS)
def test_streaming_round_trip(anthropic_client, fresh_backend, model, blocks):
    with anthropic_client.messages.stream(**{**HI, "model": model}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert [block.type for block in final.content] == blocks
    assert text and final.content[-1].text == text
    assert final.stop_reason == "end_turn"
    received = fresh_backend.requests[-1]
    assert received["stream"] is True
    if "thinking" in blocks:
        assert final.content[0].thinking == default_reasoning(received)


def test_demo_model_answers_without_a_backend(anthropic_client):
    message = anthropic_client.messages.create(**{**HI, "model": "demo"})
    assert "demo model" in message.content[0].text


def test_status_names_the_live_upstream(stack, litellm):
    status, body = get_json(stack.url + "/_stabilizer/status")
    assert status == 200
    assert body["upstream"] == litellm.url and body["learned_at"] and body["version"]


def test_litellm_restart_gap_gets_503_json_then_new_port(stack, litellm, master_key):
    old_url = litellm.url
    litellm.kill()
    status, headers, body = post_json(stack.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert status == 503, body
    assert headers["content-type"] == "application/json" and headers["retry-after"] == "1"
    assert is_anthropic_error(json.loads(body)) and json.loads(body)["error"]["type"] == "overloaded_error"

    litellm.start()
    assert litellm.url != old_url
    stack.wait_upstream(litellm.url, timeout=1.0)  # retargeting within one second of the log line
    status, _, body = post_json(stack.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert status == 200, body


def test_log_absent_then_written_truncated_and_replaced(lone_proxy, litellm, master_key):
    proxy, log = lone_proxy
    assert proxy.status()["upstream"] is None
    status, _, body = post_json(proxy.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert status == 503 and json.loads(body)["error"]["type"] == "overloaded_error"

    with listening() as first:
        log.write_bytes(b"x" * 5000 + b"\n" + running_line(f"http://127.0.0.1:{first}"))
        proxy.wait_upstream(f"http://127.0.0.1:{first}", timeout=1.0)

    log.write_bytes(running_line(litellm.url))  # truncated in place, shorter than before
    proxy.wait_upstream(litellm.url, timeout=1.0)
    status, _, body = post_json(proxy.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert status == 200, body

    with listening() as rotated:
        replacement = log.with_name("rotated.log")
        replacement.write_bytes(running_line(f"http://127.0.0.1:{rotated}"))
        os.replace(replacement, log)
        proxy.wait_upstream(f"http://127.0.0.1:{rotated}", timeout=1.0)


def test_a_stale_port_in_the_log_is_never_routed_to(lone_proxy, litellm, master_key):
    # The log is appended to across restarts; its last line may name a LiteLLM that is gone.
    proxy, log = lone_proxy
    stale = f"http://127.0.0.1:{free_port()}"
    log.write_bytes(running_line(stale))
    poll_until(lambda: proxy.status()["waiting_for"] == stale, 1.0, "the stale port read")
    status, _, body = post_json(proxy.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert (
        status == 503
        and json.loads(body)["error"]["message"] == f"LiteLLM at {stale} does not answer yet; retry shortly"
    )
    assert proxy.status()["upstream"] is None
    with open(log, "ab") as f:
        f.write(running_line(litellm.url))
    proxy.wait_upstream(litellm.url, timeout=1.0)
    status, _, body = post_json(proxy.url + "/v1/messages", HI, {"x-api-key": master_key})
    assert status == 200, body


def test_refused_port_gets_503_json_not_html(lone_proxy, master_key):
    proxy, log = lone_proxy
    with listening() as gone:  # answered once, then went away
        log.write_bytes(running_line(f"http://127.0.0.1:{gone}"))
        proxy.wait_upstream(f"http://127.0.0.1:{gone}", timeout=1.0)
    status, headers, body = post_json(proxy.url + "/v1/messages?beta=true", HI, {"x-api-key": master_key})
    assert status == 503 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "overloaded_error"


def stabilizer(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "stabilizer"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_run_refuses_a_taken_port(child_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = stabilizer("run", "--port", str(port), "--log-dir", str(tmp_path), env=child_env)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"port {port}" in stderr.decode()


def test_run_names_a_litellm_config_that_is_not_utf8(child_env, tmp_path):
    config = tmp_path / "litellm.yaml"
    config.write_bytes("model_list:\n  - model_name: café\n".encode("latin-1"))
    process = stabilizer(
        "run",
        *("--port", str(free_port()), "--log-dir", str(tmp_path / "logs")),
        *("--litellm-config", str(config), "--env-file", str(tmp_path / "env")),
        env=child_env,
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert (
        stderr.decode()
        == f"stabilizer: {config}: not UTF-8 (byte 31: invalid continuation byte). Fix: save it as UTF-8\n"
    )


def test_run_names_an_upstream_ca_it_cannot_read(child_env, tmp_path):
    missing = tmp_path / "missing.pem"
    process = stabilizer(
        "run",
        *("--port", str(free_port()), "--log-dir", str(tmp_path / "logs")),
        *("--upstream", "https://127.0.0.1:9", "--upstream-ca", str(missing)),
        env=child_env,
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.decode() == (
        f"stabilizer: --upstream-ca {missing}: cannot read it as CA certificates (No such file or directory); "
        "give the PEM file of the CA that signed LiteLLM's certificate\n"
    )


def child_pids(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in children.read_text().split()} if children.exists() else set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads children from /proc")
def test_run_serves_restarts_litellm_and_stops_cleanly(child_env, litellm_config, tmp_path, master_key):
    port = free_port()
    process = stabilizer(
        "run",
        "--port",
        str(port),
        "--log-dir",
        str(tmp_path / "logs"),
        "--litellm-config",
        str(litellm_config),
        "--env-file",
        str(tmp_path / "env"),
        env=child_env,
    )
    try:
        stderr = LineReader(process.stderr)
        ready = stderr.wait_for("ready on", timeout=90)
        assert f"ready on http://127.0.0.1:{port}" in ready
        url = f"http://127.0.0.1:{port}/v1/messages"
        demo = {**HI, "model": "demo"}
        assert post_json(url, demo, {"authorization": f"Bearer {master_key}"})[0] == 200

        children = child_pids(process.pid)
        litellm_pid = next(pid for pid in children if b"litellm_service" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(litellm_pid, signal.SIGKILL)
        stderr.wait_for("restarting", timeout=10)
        # Claude Code retries 503 about once a second; so does this client, boundedly.
        poll_until(
            lambda: post_json(url, demo, {"authorization": f"Bearer {master_key}"})[0] == 200,
            timeout=90,
            what="a 200 from the restarted LiteLLM",
            interval=0.5,
        )
        children = child_pids(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert not [pid for pid in children if alive(pid)], "children left behind"
    # mitmdump's lines: the requests, none of the stack's own status polls; its mode names
    # the LiteLLM it started with, not a placeholder.
    output = process.stdout.read().decode()
    assert "/v1/messages" in output and "/_stabilizer/status" not in output, output[-2000:]
    assert f"reverse proxy to {ready.split(' -> LiteLLM ')[1].split()[0]}" in output, output[:1000]


def test_body_over_32_mb_is_refused_before_it_is_read(stack, master_key):
    """mitmdump answers from Content-Length alone: 413 request_too_large, nothing buffered."""
    client = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    client.putrequest("POST", "/v1/messages")
    for name, value in {
        "x-api-key": master_key,
        "content-type": "application/json",
        "content-length": str(33 << 20),
    }.items():
        client.putheader(name, value)
    client.endheaders()  # the body is never sent
    response = client.getresponse()
    assert response.status == 413 and response.headers["content-type"] == "application/json"
    assert json.loads(response.read())["error"]["type"] == "request_too_large"
