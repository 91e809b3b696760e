"""Secrets and exposure of a running `stabilizer run` stack (issue 8).

Anything on the machine can reach the stack's ports, so: every listener is on
loopback; every API path wants the master key; the status endpoint and the
process list tell nothing about keys; and after a day's worth of scenarios with
recognisable fake keys (the session's "sk-test-master-..." master key and
"sk-fake-provider-..." backend key), no log file, recorded flow, output or
status answer holds either of them.
"""

import http.client
import ipaddress
import json
import os
import queue
import re
import signal
import sys
from pathlib import Path

import pytest

from addons.errors.anthropic import is_anthropic_error
from tests.backend import Error
from tests.procs import get_json, poll_until
from tests.stack.test_reliability import (
    RunStack,
    child_pids,
    message_request,
    send,
    start_stabilizer_run,
    stop_stabilizer_run,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads sockets and processes from /proc")

API_PATHS = [
    "/v1/messages?beta=true",
    "/v1/messages",
    "/v1/messages/count_tokens?beta=true",
    "/v1/chat/completions",
    "/v1/models",
]
# LiteLLM's own routes outside /v1/: LiteLLM checks the key there itself.
LITELLM_ADMIN_PATHS = ["/chat/completions", "/key/generate", "/model/info", "/config/yaml", "/user/new", "/models"]
# What a caller may see without a key; scanned for secrets like the logs.
PUBLIC_PATHS = ["/_stabilizer/status", "/", "/health/liveliness", "/health/readiness", "/openapi.json"]
CREDENTIALS_IN_URL = re.compile(r"\w+://[^/\s:@\"]+:[^/\s@\"]+@")


@pytest.fixture(scope="module")
def secret_stack(child_env, litellm_config, tmp_path_factory):
    home = tmp_path_factory.mktemp("secrets")
    stack = start_stabilizer_run(child_env, litellm_config, home, "--record", str(home / "flows.mitm"))
    yield stack
    stop_stabilizer_run(stack)


def stack_pids(stack: RunStack) -> list[int]:
    pids, todo = [], [stack.process.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += child_pids(pid)
    return pids


def listening_sockets(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, parse in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.append((parse(address), int(port, 16)))
    return found


def _ipv4(hex_address: str) -> str:
    return ".".join(str(b) for b in reversed(bytes.fromhex(hex_address)))


def _ipv6(hex_address: str) -> str:
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, 32, 8))
    address = ipaddress.IPv6Address(raw)
    return str(address.ipv4_mapped or address)


def test_every_listener_is_on_loopback(secret_stack):
    listeners = listening_sockets(stack_pids(secret_stack))
    ports = {port for _, port in listeners}
    litellm_port = int(get_json(secret_stack.url + "/_stabilizer/status")[1]["upstream"].rsplit(":", 1)[1])
    assert {secret_stack.port, litellm_port} <= ports, listeners
    assert all(address in ("127.0.0.1", "::1") for address, _ in listeners), listeners


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "sk-wrong"}, {"authorization": "Bearer sk-wrong"}, {"authorization": "Bearer "},
     {"authorization": "Basic c2stdGVzdDp4"}, {"api-key": "MASTER"}, {"x-api-key": "MASTER-and-more"},
     {"x-api-key": "PREFIX"}, {"x-api-key": "sk-wrong", "authorization": "Bearer MASTER"}],
    ids=["none", "wrong x-api-key", "wrong bearer", "empty bearer", "basic", "azure header", "longer", "prefix",
         "wrong x-api-key, right bearer"],
)  # fmt: skip
def test_api_paths_want_the_master_key(secret_stack, master_key, path, headers):
    headers = {
        name: value.replace("MASTER", master_key).replace("PREFIX", master_key[:-2]) for name, value in headers.items()
    }
    method = "GET" if path == "/v1/models" else "POST"
    status, body = request(secret_stack, method, path, headers)
    assert status in (401, 403), body
    assert is_anthropic_error(body) and body["error"]["type"] in ("authentication_error", "permission_error")


@pytest.mark.parametrize("path", LITELLM_ADMIN_PATHS)
@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_litellm_routes_want_the_master_key_too(secret_stack, path, key):
    # LiteLLM itself would answer 500 (no key) or 400 "No connected db." (a wrong one).
    status, body = request(secret_stack, "GET" if path in ("/model/info", "/models") else "POST", path,
                           {"authorization": f"Bearer {key}"} if key else {})  # fmt: skip
    assert status == 401 and is_anthropic_error(body), body


@pytest.mark.parametrize("path", ["/V1/messages", "//v1/messages", "/v1/../v1/messages", "/v1/%6D%65ssages"])
def test_path_tricks_do_not_skip_the_key(secret_stack, path):
    status, body = request(secret_stack, "POST", path, {})
    assert status == 401 and is_anthropic_error(body), body


def test_the_public_root_serves_nothing_else(secret_stack):
    # "/" needs no key (Claude Code fetches it at start); it is LiteLLM's root and nothing more.
    assert request(secret_stack, "POST", "/?/v1/messages", {})[0] == 405


def request(stack: RunStack, method: str, path: str, headers: dict) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        body = json.dumps(message_request("hi", "demo", False)).encode() if method == "POST" else None
        connection.request(method, path, body, {"content-type": "application/json", **headers})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


def test_status_tells_no_key_file_or_credentials(secret_stack, master_key, provider_key):
    status, body = get_json(secret_stack.url + "/_stabilizer/status")
    text = json.dumps(body)
    assert status == 200 and body["upstream"].startswith("http://127.0.0.1:")
    assert master_key not in text and provider_key not in text
    assert str(secret_stack.home / "env") not in text
    assert not CREDENTIALS_IN_URL.search(text), text


def test_no_key_on_a_command_line(secret_stack, master_key, provider_key):
    # The process list shows command lines to every user of the machine.
    cmdlines = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in stack_pids(secret_stack))
    assert b"litellm_service" in cmdlines and b"mitmdump" in cmdlines
    assert master_key.encode() not in cmdlines and provider_key.encode() not in cmdlines


def run_scenarios(stack: RunStack, backend, master_key: str) -> list[str]:
    """A day's worth of traffic, failures included; returns every answer a keyless caller could get."""
    for model in ("demo", "deepseek-flash"):
        for stream in (False, True):
            assert send(stack.url, message_request("hello", model, stream), master_key).status == 200
    counted = send(stack.url, message_request("count me", "deepseek-flash", False), master_key,
                   path="/v1/messages/count_tokens?beta=true")  # fmt: skip
    assert counted.status == 200
    for error in (
        Error(401, {"error": {"message": "Authentication Fails, Your api key is invalid",
                              "type": "authentication_error"}}),
        Error(500, {"error": {"message": "upstream exploded", "type": "server_error"}}),
    ):  # fmt: skip
        backend.responder = lambda body, error=error: error
        assert send(stack.url, message_request("fail", "deepseek-flash", False), master_key).status >= 400
    backend.reset()
    assert send(stack.url, message_request("hi", "demo", False), "sk-wrong").status == 401
    # A restart: the supervisor and the new LiteLLM write their logs again.
    old_upstream = get_json(stack.url + "/_stabilizer/status")[1]["upstream"]
    os.kill(stack.litellm_pid(), signal.SIGKILL)
    poll_until(lambda: get_json(stack.url + "/_stabilizer/status")[1]["upstream"] not in (None, old_upstream),
               timeout=90, what="the restarted LiteLLM", interval=0.5)  # fmt: skip
    assert send(stack.url, message_request("after the restart", "deepseek-flash", True), master_key).status == 200
    return [json.dumps(request(stack, "GET", path, {})) for path in PUBLIC_PATHS]


def all_output(stack: RunStack) -> str:
    lines = list(stack.stderr.seen)
    while True:
        try:
            lines.append(stack.stderr.lines.get_nowait())
        except queue.Empty:
            return "".join(lines)


def test_no_key_in_logs_flows_output_or_status(secret_stack, fresh_backend, master_key, provider_key, session_home):
    public_answers = run_scenarios(secret_stack, fresh_backend, master_key)
    stop_stabilizer_run(secret_stack)  # flushes the recorder and every log

    env_file = secret_stack.home / "env"
    searched: dict[str, bytes] = {}
    # This stack's logs, output and recorded flows; the session's LiteLLM and mitmdump logs.
    files = [path for path in secret_stack.home.rglob("*") if path.is_file() and path != env_file]
    files += [path for path in session_home.rglob("*.log") if path.is_file()]
    for path in files:
        searched[str(path)] = path.read_bytes()
    searched["stabilizer run stderr"] = all_output(secret_stack).encode()
    for path, answer in zip(PUBLIC_PATHS, public_answers):
        searched[f"GET {path}"] = answer.encode()

    assert (secret_stack.home / "flows.mitm").stat().st_size > 0, "the recorder wrote nothing"
    assert any("litellm.log" in name for name in searched), list(searched)
    for secret in (master_key, provider_key):
        leaks = [name for name, content in searched.items() if secret.encode() in content]
        assert not leaks, f"{secret[:16]}... found in {leaks}"
    if env_file.exists():
        assert env_file.stat().st_mode & 0o077 == 0
