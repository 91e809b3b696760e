"""The front door checks the key LiteLLM checks, in any form a LiteLLM config gives it."""

import http.client
import http.server
import json
import re
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from mitmproxy.net.encoding import encode

from addons.errors.anthropic import is_anthropic_error
from tests.backend import Text
from tests.claude import run_claude
from tests.conftest import POLICY
from tests.procs import LiteLLM, Mitmdump, StabilizerRun, post_json
from tests.stack.test_shaping import TOOLS, WINDOW_128K_MODEL, long_history, recorded_request
from tests.workload import as_compaction_request

STABILIZER = str(Path(sys.executable).parent / "stabilizer")


def ask(url: str, key: str, path: str = "/v1/messages") -> tuple[int, dict]:
    status, _, raw = post_json(
        url + path,
        {"model": "plain-model", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
    )
    return status, yaml.safe_load(raw)


def test_a_literal_master_key_in_the_config_is_the_one_that_opens(
    tmp_path, litellm_config, child_env, fresh_backend, master_key
):
    # As LiteLLM's own docs write it: the key in the config, not in the environment.
    literal = "sk-literal-" + secrets.token_hex(8)
    config = yaml.safe_load(litellm_config.read_text())
    config["general_settings"]["master_key"] = literal
    path = tmp_path / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    fresh_backend.responder = lambda body: Text("Through the front door.")
    run = StabilizerRun(tmp_path, litellm_config=path, policy=POLICY, env=child_env).start()
    try:
        assert ask(run.url, literal)[0] == 200
        # The env file's key (what the front door used to check) is not LiteLLM's: refused at the door,
        # in Anthropic's words, instead of LiteLLM's "No connected db.".
        status, body = ask(run.url, master_key)
        assert (status, body["error"]) == (401, {"type": "authentication_error", "message": "invalid API key"})
        printed = subprocess.run(
            [STABILIZER, "key", "--litellm-config", str(path), "--env-file", str(tmp_path / "env")],
            env=child_env,
            capture_output=True,
            text=True,
        )
        assert printed.stdout.strip() == literal
        (tmp_path / "project").mkdir()
        result = run_claude("hi", base_url=run.url, auth_token=literal, model="plain-model", cwd=tmp_path / "project")
        assert not result["is_error"] and result["result"] == "Through the front door.", result.describe()
    finally:
        run.stop()


@pytest.mark.parametrize(
    "path", ["/v1/messages/", "/v1/%6D%65ssages", "//v1//messages?beta=true", "/v1/messages/count_tokens/"]
)
def test_every_spelling_of_a_shaped_path_is_shaped(stack, fresh_backend, master_key, path):
    # qwen-plus takes at most 8192: the cap shows the request went through the request addon.
    request = {"model": "qwen-plus", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = post_json(
        stack.url + path, request, {"authorization": f"Bearer {master_key}", "anthropic-version": "2023-06-01"}
    )
    assert status == 200, raw[:300]
    if "count_tokens" in path:
        assert json.loads(raw)["input_tokens"] > 0
    else:
        assert fresh_backend.requests[-1]["max_tokens"] == 8192


def test_no_answer_carries_litellms_own_port(stack, litellm, master_key):
    # A route of LiteLLM's own (GET /v1/models/ is answered here, for Claude Code's model picker).
    request = urllib.request.Request(stack.url + "/models/", headers={"authorization": f"Bearer {master_key}"})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open(request, timeout=10)
        status, location = response.status, response.headers.get("location")
    except urllib.error.HTTPError as e:
        status, location = e.code, e.headers.get("location")
    assert status == 307 and location == f"{stack.url}/models", location
    assert str(litellm.address[1]) not in location


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_a_compressed_bomb_gets_413_and_the_next_request_is_fine(stack, fresh_backend, master_key, coding):
    # 40 MB of one byte, compressed to a few KB: past the 32 MB mitmdump takes, once decoded.
    bomb = encode(b" " * (40 * 1024 * 1024), coding)
    headers = {"authorization": f"Bearer {master_key}", "anthropic-version": "2023-06-01", "content-encoding": coding}
    status, _, raw = post_json(stack.url + "/v1/messages", None, headers, raw=bomb)
    assert status == 413 and json.loads(raw)["error"]["type"] == "request_too_large", raw[:300]
    assert "decodes to more than 33554432 bytes" in json.loads(raw)["error"]["message"]
    request = {"model": "plain-model", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = post_json(
        stack.url + "/v1/messages", None, headers, raw=encode(json.dumps(request).encode(), coding)
    )
    assert status == 200


# --- in front of a LiteLLM that runs elsewhere -------------------------------------------------------


@pytest.fixture
def team_litellm(tmp_path, litellm_config, child_env):
    """A LiteLLM the test starts itself, as a team runs one: its master key written in its config."""
    literal = "sk-team-admin-" + secrets.token_hex(8)
    config = yaml.safe_load(litellm_config.read_text())
    config["general_settings"]["master_key"] = literal
    path = tmp_path / "team-litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    process = LiteLLM(path, tmp_path / "team-logs" / "litellm.log", child_env).start()
    yield process, literal
    process.stop()


def test_fronting_a_litellm_that_runs_elsewhere(tmp_path, team_litellm, child_env, fresh_backend):
    litellm, key = team_litellm
    url = f"http://{litellm.address[0]}:{litellm.address[1]}"
    fresh_backend.responder = lambda body: Text("From the team's LiteLLM.")
    # No key of this machine's env file: the front door leaves keys to LiteLLM.
    env = {name: value for name, value in child_env.items() if name != "LITELLM_MASTER_KEY"}
    run = StabilizerRun(tmp_path, litellm_config=None, policy=POLICY, env=env, extra_args=("--upstream", url)).start()
    try:
        status = json.loads(urllib.request.urlopen(run.url + "/_stabilizer/status", timeout=5).read())
        assert (status["upstream"], status["mode"], status["reachable"]) == (url, "upstream", True)
        (tmp_path / "project").mkdir()
        result = run_claude("hi", base_url=run.url, auth_token=key, model="plain-model", cwd=tmp_path / "project")
        assert not result["is_error"] and result["result"] == "From the team's LiteLLM.", result.describe()
        # LiteLLM's own refusal of a key it does not know, in Anthropic's shape; nothing counted for it.
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            code, body = ask(run.url, "sk-not-a-team-key", path)
            assert code == 401 and body["type"] == "error" and body["error"]["type"] == "authentication_error", body
        litellm.kill()
        # The request that finds it gone, then the next, answered at once: Claude Code retries both.
        for _ in range(2):
            code, headers, raw = post_json(
                run.url + "/v1/messages",
                {"model": "plain-model", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
                {"authorization": f"Bearer {key}"},
            )
            assert code == 503 and json.loads(raw)["error"]["type"] == "overloaded_error", raw
            assert headers.get("Retry-After") or headers.get("retry-after")
        assert json.loads(raw)["error"]["message"] == f"LiteLLM at {url} cannot be reached; retry shortly"
        status = json.loads(urllib.request.urlopen(run.url + "/_stabilizer/status", timeout=5).read())
        assert status["reachable"] is False
    finally:
        run.stop()


def test_two_front_doors_one_litellm_and_one_of_them_killed(tmp_path, litellm, child_env, fresh_backend, master_key):
    url = f"http://{litellm.address[0]}:{litellm.address[1]}"
    env = {name: value for name, value in child_env.items() if name != "LITELLM_MASTER_KEY"}
    doors = [
        StabilizerRun(tmp_path / name, litellm_config=None, policy=POLICY, env=env, extra_args=("--upstream", url))
        for name in ("a", "b")
    ]
    for door in doors:
        door.folder.mkdir()
        door.start()
    fresh_backend.responder = lambda body: Text(f"Answer {sum(m['role'] == 'user' for m in body['messages'])}.")
    messages: list[dict] = []
    try:
        for turn in range(6):
            if turn == 3:
                doors[0].stop()  # killed mid-session: the balancer sends the rest to the other
            door = doors[1] if turn >= 3 else doors[turn % 2]
            messages.append({"role": "user", "content": f"Question {turn + 1}."})
            status, _, raw = post_json(
                door.url + "/v1/messages",
                {"model": "deepseek-flash", "max_tokens": 256, "messages": messages},
                {"authorization": f"Bearer {master_key}"},
            )
            assert status == 200, raw[:300]
            answer = json.loads(raw)
            assert answer["content"][-1]["text"] == f"Answer {turn + 1}."
            messages.append({"role": "assistant", "content": answer["content"]})
        # Every turn reached the backend whole, whichever door it came through.
        assert [sum(m["role"] == "user" for m in body["messages"]) for body in fresh_backend.requests] == [
            1,
            2,
            3,
            4,
            5,
            6,
        ]
    finally:
        for door in doors:
            door.stop()


class PrefixHop(http.server.ThreadingHTTPServer):
    """A team's balancer that serves LiteLLM under a path prefix: it strips the prefix on the way
    in, answers 404 to a path without it, and keeps every path that came."""

    def __init__(self, prefix: str, target: tuple[str, int]):
        super().__init__(("127.0.0.1", 0), _PrefixHopHandler)
        self.prefix, self.target = prefix, target
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.prefix}"


class _PrefixHopHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PrefixHop

    def do_POST(self) -> None:
        hop = self.server
        hop.paths.append(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if not self.path.startswith(hop.prefix + "/"):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in ("host", "connection")}
        connection = http.client.HTTPConnection(*hop.target, timeout=60)
        try:
            connection.request(self.command, self.path[len(hop.prefix) :], body, headers)
            self._relay(connection.getresponse())
        finally:
            connection.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """The answer as it comes, a stream chunk by chunk (a balancer does not buffer it)."""
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        chunked = response.getheader("content-length") is None
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        while chunk := response.read1():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def prefixed_door(litellm, child_env):
    """A front door like the session's, in front of the session's LiteLLM under /litellm (--upstream)."""
    hop = PrefixHop("/litellm", litellm.address)
    threading.Thread(target=hop.serve_forever, daemon=True).start()
    door = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=litellm.config)
    try:
        door.start(("--set", f"stabilizer_upstream={hop.url}"))
        yield door, hop
    finally:
        if door.process:
            door.stop()
        hop.shutdown()
        hop.server_close()


def test_a_path_prefix_in_upstream_shapes_and_patches_as_without_one(stack, prefixed_door, fresh_backend, master_key):
    """The same turns through the session's front door and through one whose --upstream has a path
    prefix reach the backend as the same bodies (stripped, capped, trimmed) and come back the same
    (patched with the estimates noted on the request); LiteLLM is asked under the prefix."""
    door, hop = prefixed_door
    recorded, headers = recorded_request(WINDOW_128K_MODEL)
    # Claude Code's compaction request: an ordinary turn of a history this long is refused.
    messages = as_compaction_request(long_history(300))
    long = {"model": WINDOW_128K_MODEL, "max_tokens": 32000, "stream": True, "messages": messages}
    turns = [
        ("/v1/messages?beta=true", recorded),
        ("/v1/messages", {**long, "tools": TOOLS}),
        ("/v1/messages/count_tokens?beta=true", {key: recorded[key] for key in ("model", "messages", "system")}),
    ]
    shaped = []
    for path, request in turns:
        sides = []
        for front in (stack, door):
            fresh_backend.reset()
            status, _, body = post_json(front.url + path, request, {**headers, "authorization": f"Bearer {master_key}"})
            assert status == 200, body[:300]
            sides.append((list(fresh_backend.requests), re.sub(rb'"(msg|toolu)_[^"]*"', b'"id"', body)))
        assert sides[0] == sides[1], path
        shaped.append(sides[1][0])
    assert shaped[0][0]["max_tokens"] == 8192 and len(shaped[1][0]["messages"]) < len(long["messages"])
    assert hop.paths == [f"/litellm{path}" for path, _ in turns]


def exchange(url: str, method: str, path: str, key: str | None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=30)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "method, path, with_key, status, error_type",
    [
        # Claude Code sends `HEAD /` first; LiteLLM's landing page (HTML) is not served to anyone.
        ("GET", "/", False, 200, None),
        ("HEAD", "/", False, 200, None),
        ("POST", "/", False, 405, "invalid_request_error"),
        # The status path takes no other method, and nothing without a key reaches LiteLLM through it.
        ("POST", "/_stabilizer/status", False, 405, "invalid_request_error"),
        ("DELETE", "/_stabilizer/status", False, 405, "invalid_request_error"),
        ("GET", "/v1/messages", False, 401, "authentication_error"),
        ("GET", "/v1/messages", True, 405, "invalid_request_error"),
        ("PUT", "/v1/messages/count_tokens?beta=true", True, 405, "invalid_request_error"),
        # Paths LiteLLM does not serve: its FastAPI {"detail": "Not Found"}, in Anthropic's shape.
        ("GET", "/v1/no-such-route", True, 404, "not_found_error"),
        ("POST", "/v2/messages", True, 404, "not_found_error"),
    ],
)
def test_every_answer_at_the_edges_is_anthropic_shaped(
    stack, fresh_backend, master_key, method, path, with_key, status, error_type
):
    code, headers, raw = exchange(stack.url, method, path, master_key if with_key else None)
    assert code == status, raw[:300]
    assert headers["content-type"] == "application/json" and b"<html" not in raw.lower()
    if method == "HEAD":
        assert raw == b""
    elif error_type:
        body = json.loads(raw)
        assert is_anthropic_error(body) and body["error"]["type"] == error_type, body
    else:
        assert json.loads(raw)["status"] == "/_stabilizer/status"
    if code == 405:
        assert headers["allow"]
    fresh_backend.responder = lambda body: Text("Still here.")
    assert ask(stack.url, master_key)[0] == 200
