import json
import logging
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.net.encoding import encode
from mitmproxy.test import taddons, tflow

from addons import request_addon
from addons.request_addon import RequestShaper
from tests.bench import workload

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "stabilizer.yaml"
RECORDED = (ROOT / "tests" / "data" / "claude_code_request.json").read_bytes()
HEADERS = json.loads((ROOT / "tests" / "data" / "claude_code_request.headers.json").read_text())


@pytest.fixture
def shaper():
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(SHIPPED))
        yield addon


def post(path: str, body: bytes | dict, headers: dict | None = None):
    flow = tflow.tflow()
    flow.request.method = "POST"
    flow.request.path = path
    flow.request.host, flow.request.port = "127.0.0.1", 43210  # where Upstream sent it
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.request.content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return flow


def sent(flow) -> dict:
    return json.loads(flow.request.get_content())


def recorded(**changes) -> dict:
    return {**json.loads(RECORDED), **changes}


@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/v1/messages"])
def test_recorded_claude_code_request_is_shaped(shaper, path):
    flow = post(path, RECORDED, HEADERS)
    shaper.request(flow)

    body = sent(flow)
    assert set(body) == {"model", "messages", "system", "tools", "max_tokens", "stream"}
    assert body["max_tokens"] == 8192 and body["stream"] is True
    assert "cache_control" not in flow.request.get_text()
    assert "Available agent types" in body["messages"][0]["content"][-1]["text"]
    assert "anthropic-beta" not in flow.request.headers
    assert flow.request.headers["anthropic-version"] == "2023-06-01"
    assert (flow.request.host, flow.request.port) == ("127.0.0.1", 43210)
    assert flow.response is None
    assert flow.metadata["stabilizer"] == {
        "model": "deepseek-chat",
        "stream": True,
        "input_tokens": flow.metadata["stabilizer"]["input_tokens"],
        "context_window": 131072,
        "max_output_tokens": 8192,
        "changes": [
            "folded 1 system messages",
            "stripped keys: metadata, thinking, context_management, output_config",
            "removed cache_control x3",
            "capped max_tokens 32000->8192",
            "removed anthropic-beta header",
        ],
    }
    assert 15_000 < flow.metadata["stabilizer"]["input_tokens"] < 20_000


def test_change_is_logged_in_one_line(shaper, caplog):
    with caplog.at_level(logging.INFO, logger=request_addon.__name__):
        shaper.request(post("/v1/messages?beta=true", RECORDED))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model=")]
    assert line.startswith("model=deepseek-chat tokens=")
    assert "removed=0" in line and "stripped keys: metadata, thinking" in line


def test_stream_false_is_respected(shaper):
    flow = post("/v1/messages", recorded(stream=False))
    shaper.request(flow)
    assert sent(flow)["stream"] is False and flow.metadata["stabilizer"]["stream"] is False


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate"])
def test_compressed_body_goes_upstream_decoded(shaper, encoding):
    # LiteLLM does not decode request bodies: it would find no `messages` in a compressed one.
    flow = post("/v1/messages", b"")
    flow.request.headers["content-encoding"] = encoding
    flow.request.raw_content = encode(RECORDED, encoding)
    shaper.request(flow)
    assert "content-encoding" not in flow.request.headers
    assert json.loads(flow.request.raw_content)["max_tokens"] == 8192


def test_count_tokens_is_folded_and_stripped_only(shaper):
    body = recorded(model="demo")
    body["messages"].append({"role": "user", "content": "x " * 40_000})  # over demo's budget
    flow = post("/v1/messages/count_tokens?beta=true", body)
    shaper.request(flow)
    out = sent(flow)
    assert flow.response is None
    assert out["max_tokens"] == 32000 and "thinking" not in out
    assert len(out["messages"]) == len(body["messages"]) - 1  # the system message was folded, nothing trimmed
    assert flow.metadata["stabilizer"]["input_tokens"] > 40_000


def test_long_history_is_trimmed(shaper):
    body = recorded(model="demo")
    for i in range(60):
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "line\n" * 300}]},
        ]
    flow = post("/v1/messages?beta=true", body)
    shaper.request(flow)
    meta = flow.metadata["stabilizer"]
    removed = len(body["messages"]) - 1 - len(sent(flow)["messages"])
    assert removed > 0 and f"trimmed {removed} messages" in meta["changes"]
    assert meta["input_tokens"] <= 32768 - 4096 - 2048


def test_prompt_too_long_is_answered_here(shaper):
    body = recorded(model="demo")
    body["messages"].append({"role": "user", "content": "word " * 40_000})
    flow = post("/v1/messages?beta=true", body)
    original = flow.request.content
    shaper.request(flow)
    assert flow.response.status_code == 400
    assert flow.response.headers["content-type"] == "application/json"
    error = json.loads(flow.response.content)["error"]
    assert error["type"] == "invalid_request_error"
    tokens, maximum = error["message"].removeprefix("prompt is too long: ").split(" tokens > ")
    assert int(tokens) > int(maximum.removesuffix(" maximum")) == 32768 - 4096 - 2048
    assert flow.request.content == original
    assert flow.metadata["stabilizer"]["changes"][-1] == "answered 400: " + error["message"]


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json at all", "not JSON"),
        (b'{"max_tokens": NaN, "messages": []}', "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"model": "m", "prompt": "hi"}', "messages: expected a list"),
        (b'{"model": "m", "messages": [5]}', "messages.0: expected a message object"),
    ],
)
def test_body_problems_are_answered_400_with_one_line(shaper, caplog, body, reason):
    # LiteLLM would answer most of these with a 500 after retrying, which Claude Code retries again.
    flow = post("/v1/messages", body, {"anthropic-beta": "x"})
    with caplog.at_level(logging.INFO, logger=request_addon.__name__):
        shaper.request(flow)
    assert flow.response.status_code == 400
    error = json.loads(flow.response.content)["error"]
    assert error["type"] == "invalid_request_error" and reason in error["message"]
    assert [reason in r.getMessage() for r in caplog.records] == [True]


def test_undecodable_body_is_answered_400(shaper):
    flow = post("/v1/messages", b"")
    flow.request.headers["content-encoding"] = "gzip"
    flow.request.raw_content = RECORDED  # says gzip, is not
    shaper.request(flow)
    assert flow.response.status_code == 400
    assert "Content-Encoding: gzip" in json.loads(flow.response.content)["error"]["message"]


def test_other_requests_are_not_touched(shaper):
    for method, path in [("GET", "/v1/messages"), ("POST", "/v1/complete"), ("POST", "/v1/models")]:
        flow = post(path, RECORDED)
        flow.request.method = method
        shaper.request(flow)
        assert flow.request.content == RECORDED and "stabilizer" not in flow.metadata


def test_a_request_already_answered_is_left_alone(shaper):
    flow = post("/v1/messages", RECORDED)
    flow.response = tflow.tresp(status_code=503)
    shaper.request(flow)
    assert flow.request.content == RECORDED


def test_a_failure_inside_leaves_the_request_unchanged(shaper, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(request_addon, "trim_request", broken)
    flow = post("/v1/messages", RECORDED, {"anthropic-beta": "x"})
    shaper.request(flow)
    assert flow.request.content == RECORDED and flow.request.headers["anthropic-beta"] == "x"
    assert any("unchanged" in r.getMessage() for r in caplog.records)


def test_bad_policy_file_stops_start_up_naming_file_and_key(tmp_path):
    bad = tmp_path / "stabilizer.yaml"
    bad.write_text("models:\n  deepseek-chat:\n    max_output_tokens: -8192\n")
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError) as caught:
            tctx.configure(addon, stabilizer_policy=str(bad))
        assert str(bad) in str(caught.value)
        assert "models.deepseek-chat.max_output_tokens" in str(caught.value)
        with pytest.raises(exceptions.OptionsError, match="file not found"):
            tctx.configure(addon, stabilizer_policy=str(tmp_path / "missing.yaml"))


def test_no_policy_uses_built_in_defaults():
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy="")
        flow = post("/v1/messages", recorded(model="anything"))
        addon.request(flow)
        assert flow.metadata["stabilizer"]["context_window"] == 131072


def test_a_session_shaped_turn_by_turn_is_shaped_as_each_turn_alone(shaper):
    """The addon parses a next turn from the previous one (addons/history.py) and reuses
    what it worked out from the shared messages; the result is what a fresh addon gives."""
    session = workload.long_session(700_000)  # trimmed under the shipped 128K window
    for turn in range(4):
        session = workload.next_turn(session, turn)
        body = workload.encode(session)
        continued = post("/v1/messages?beta=true", body)
        shaper.request(continued)
        alone = post("/v1/messages?beta=true", body)
        fresh = RequestShaper()
        fresh.policy = shaper.policy
        fresh.request(alone)
        assert continued.request.content == alone.request.content
        assert continued.metadata == alone.metadata
        assert any("trimmed" in change for change in continued.metadata["stabilizer"]["changes"])
    assert len(shaper.history._known) == 1
