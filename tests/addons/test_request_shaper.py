"""The request addon in process (addons/request_shaper.py): the recorded Claude Code request shaped per
model and route, trimmed or answered "prompt is too long", malformed bodies answered 400, the policy
and LiteLLM config at start-up, fallbacks and the vision model, large bodies off the event loop, a
session shaped turn by turn as each turn alone.
"""

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow

from addons import request_shaper
from addons.classifier import FlowClassifier
from addons.flow.change import Change, ChangeKind
from addons.flow.notes import changes
from addons.messages import tokens
from addons.messages.provenance import wrap
from addons.request.history import History
from addons.request_shaper import RequestShaper
from tests import workload

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED = ROOT / "config" / "stabilizer.yaml"
RECORDED = (ROOT / "tests" / "data" / "claude_code_request.json").read_bytes()
HEADERS = json.loads((ROOT / "tests" / "data" / "claude_code_request.headers.json").read_text())


@pytest.fixture
def shaper():
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(SHIPPED))
        yield addon


def post(path: str, body: bytes | dict, headers: dict | None = None, method: str = "POST"):
    flow = tflow.tflow()
    flow.request.method = method
    flow.request.path = path
    flow.request.host, flow.request.port = "127.0.0.1", 43210  # where Upstream sent it
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.request.content = body if isinstance(body, bytes) else json.dumps(body).encode()
    FlowClassifier().requestheaders(flow)  # first in the bundle: the shaper goes by its note
    return flow


def handle(shaper, flow) -> None:
    """The request hook as mitmproxy runs it: awaited when it hands the work to its worker thread."""
    if (pending := shaper.request(flow)) is not None:
        asyncio.run(pending)


def sent(flow) -> dict:
    return json.loads(flow.request.get_content())


def recorded(**changes) -> dict:
    return {**json.loads(RECORDED), **changes}


@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/v1/messages"])
def test_recorded_claude_code_request_is_shaped(shaper, path):
    # qwen-plus: a backend that refuses max_tokens above 8192, so Claude Code's 32000 is capped.
    flow = post(path, recorded(model="qwen-plus"), HEADERS)
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
        "model": "qwen-plus",
        "policy_file": str(SHIPPED),
        "policy_key": "qwen-plus",
        "reasoning_required": False,
        "signatures_verified": False,
        "stream": True,
        "input_tokens": flow.metadata["stabilizer"]["input_tokens"],
        "fixed_tokens": flow.metadata["stabilizer"]["fixed_tokens"],
        "context_window": 131072,
        "max_output_tokens": 8192,
        "think_tags": False,
        "origin": "qwen-plus",
        "changes": [  # as stored: plain data (addons/flow/notes.py)
            {"kind": "folded", "detail": "folded 1 system messages"},
            {"kind": "stripped", "detail": "stripped keys: metadata, thinking, context_management, output_config"},
            {"kind": "stripped", "detail": "removed cache_control x3"},
            {"kind": "capped", "detail": "capped max_tokens 32000->8192"},
            {"kind": "stripped", "detail": "removed anthropic-beta header"},
        ],
    }
    assert 15_000 < flow.metadata["stabilizer"]["input_tokens"] < 20_000
    # The system prompt and the 24 tools: most of Claude Code's first request.
    assert 12_000 < flow.metadata["stabilizer"]["fixed_tokens"] < flow.metadata["stabilizer"]["input_tokens"]


def test_recorded_claude_code_request_is_shaped_for_deepseek(shaper):
    flow = post("/v1/messages?beta=true", recorded(model="deepseek-flash"), HEADERS)
    shaper.request(flow)

    body = sent(flow)
    assert set(body) == {"model", "messages", "system", "tools", "max_tokens", "stream", "extra_body"}
    # DeepSeek V4 takes max_tokens up to 393216: Claude Code's 32000 goes as it is.
    assert body["max_tokens"] == 32000
    # Claude Code's adaptive thinking at effort high, as DeepSeek's own fields (LiteLLM forwards extra_body).
    assert body["extra_body"] == {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}
    assert flow.metadata["stabilizer"] == {
        "model": "deepseek-flash",
        "policy_file": str(SHIPPED),
        "policy_key": "deepseek-flash",
        "reasoning_required": True,
        "signatures_verified": False,
        "stream": True,
        "input_tokens": flow.metadata["stabilizer"]["input_tokens"],
        "fixed_tokens": flow.metadata["stabilizer"]["fixed_tokens"],
        "context_window": 1000000,
        "max_output_tokens": 393216,
        "think_tags": False,
        "origin": "deepseek-flash",
        "changes": [
            {"kind": "folded", "detail": "folded 1 system messages"},
            {"kind": "stripped", "detail": "stripped keys: metadata, thinking, context_management, output_config"},
            {"kind": "stripped", "detail": "removed cache_control x3"},
            {
                "kind": "thinking",
                "detail": "thinking on, effort high -> extra_body={thinking: {type: enabled}, reasoning_effort: high}",
            },
            {"kind": "stripped", "detail": "removed anthropic-beta header"},
        ],
    }


def test_retired_deepseek_chat_gets_the_defaults(shaper):
    # deepseek-chat was retired on 2026-07-24: the shipped policy has no entry for it.
    flow = post("/v1/messages", recorded(model="deepseek-chat"))
    shaper.request(flow)
    meta = flow.metadata["stabilizer"]
    assert (meta["context_window"], meta["max_output_tokens"]) == (131072, 32000)
    assert sent(flow)["max_tokens"] == 32000 and "extra_body" not in sent(flow)


def test_change_is_logged_in_one_line(shaper, caplog):
    with caplog.at_level(logging.INFO, logger=request_shaper.__name__):
        shaper.request(post("/v1/messages?beta=true", recorded(model="deepseek-flash")))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model=")]
    assert line.startswith("model=deepseek-flash tokens=")
    assert "removed=0" in line and "stripped keys: metadata, thinking" in line


def test_stream_false_is_respected(shaper):
    flow = post("/v1/messages", recorded(stream=False))
    shaper.request(flow)
    assert sent(flow)["stream"] is False and flow.metadata["stabilizer"]["stream"] is False


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


def long_history(turns: int, lines: int = 300) -> dict:
    """The recorded request plus `turns` tool round trips of `lines` lines each, on the 32K demo policy."""
    body = recorded(model="demo")
    for i in range(turns):
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "line\n" * lines}]},
        ]
    return body


def test_a_turn_past_the_budget_is_trimmed_and_its_usage_counts_what_was_sent(shaper):
    # The history before the last turn fits the window: the last tool result takes it past the budget.
    body = long_history(12)
    body["messages"][-1]["content"][0]["content"] = "line\n" * 4000
    flow = post("/v1/messages?beta=true", body)
    shaper.request(flow)
    meta = flow.metadata["stabilizer"]
    removed = len(body["messages"]) - 1 - len(sent(flow)["messages"])
    assert removed > 0 and Change(ChangeKind.TRIMMED, f"trimmed {removed} messages") in changes(flow)
    assert meta["input_tokens"] <= 32768 - 4096 - 2048
    # What the usage will count: what Claude Code sent, past the budget.
    assert meta["input_tokens"] + meta["trimmed_tokens"] > 32768 - 4096 - 2048


def test_a_history_over_the_window_before_its_turn_is_answered_prompt_too_long(shaper):
    body = long_history(60)
    flow = post("/v1/messages?beta=true", body)
    shaper.request(flow)
    assert flow.response.status_code == 400
    message = json.loads(flow.response.content)["error"]["message"]
    tokens_sent, maximum = message.removeprefix("prompt is too long: ").split(" tokens > ")
    assert int(tokens_sent) > 32768 and maximum == f"{32768 - 4096 - 2048} maximum"
    assert "over the model's window" in changes(flow)[-1].detail


def test_claude_codes_compaction_request_over_a_long_history_is_trimmed(shaper):
    body = long_history(60)
    body["messages"] = workload.as_compaction_request(body["messages"])
    flow = post("/v1/messages?beta=true", body)
    shaper.request(flow)
    assert flow.response is None
    kept = sent(flow)["messages"]
    assert "say hi" in [block.get("text") for block in kept[0]["content"]]  # the task
    assert kept[-1]["content"][0] == body["messages"][-1]["content"][0]  # the latest turn
    assert kept[-1]["content"][-1] == body["messages"][-1]["content"][-1]  # Claude Code's instruction
    assert flow.metadata["stabilizer"]["input_tokens"] <= 32768 - 4096 - 2048


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
    assert changes(flow)[-1] == Change(ChangeKind.REFUSED, "answered 400: " + error["message"])


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
    with caplog.at_level(logging.INFO):
        shaper.request(flow)
    assert flow.response.status_code == 400
    error = json.loads(flow.response.content)["error"]
    assert error["type"] == "invalid_request_error" and reason in error["message"]
    assert [reason in r.getMessage() for r in caplog.records] == [True]


def test_other_requests_are_not_touched(shaper):
    for method, path in [("GET", "/v1/messages"), ("POST", "/v1/complete"), ("POST", "/v1/models")]:
        flow = post(path, RECORDED, method=method)
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

    monkeypatch.setattr(request_shaper, "trim_request", broken)
    flow = post("/v1/messages", RECORDED, {"anthropic-beta": "x"})
    shaper.request(flow)
    assert flow.request.content == RECORDED and flow.request.headers["anthropic-beta"] == "x"
    assert any("unchanged" in r.getMessage() for r in caplog.records)


def test_bad_policy_file_stops_start_up_naming_file_and_key(tmp_path):
    bad = tmp_path / "stabilizer.yaml"
    bad.write_text("models:\n  deepseek-flash:\n    max_output_tokens: -8192\n")
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError) as caught:
            tctx.configure(addon, stabilizer_policy=str(bad))
        assert str(bad) in str(caught.value)
        assert "models.deepseek-flash.max_output_tokens" in str(caught.value)
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
    """The addon parses a next turn from the previous one (addons/request/history.py) and reuses
    what it worked out from the shared messages; the result is what a fresh addon gives."""
    session = {**workload.long_session(700_000), "model": "qwen-plus"}  # trimmed under qwen-plus's 128K window
    for turn in range(4):
        session = workload.next_turn(session, turn)
        # Claude Code's request for a summary: trimmed, where an ordinary turn of a history this
        # long is refused (the bound of addons/request/trim.py).
        body = workload.encode(workload.as_summary_request(session))
        continued = post("/v1/messages?beta=true", body)
        shaper.request(continued)
        alone = post("/v1/messages?beta=true", body)
        fresh = RequestShaper()
        fresh.policy, fresh.settings = shaper.policy, shaper.settings
        fresh.request(alone)
        assert continued.request.content == alone.request.content
        assert continued.metadata == alone.metadata
        assert any(change.kind is ChangeKind.TRIMMED for change in changes(continued))
    assert len(shaper.history._known) == 1


def session_turns(turns: int) -> list[bytes]:
    session = {**workload.long_session(100_000), "model": "qwen-plus"}
    bodies = []
    for turn in range(turns):
        session = workload.next_turn(session, turn)
        bodies.append(workload.encode(session))
    return bodies


def test_the_incremental_parse_can_be_switched_off(tmp_path):
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(SHIPPED), stabilizer_incremental=False)
        for body in session_turns(3):
            flow = post("/v1/messages", body)
            addon.request(flow)
            assert sent(flow)["max_tokens"] == 8192
        assert addon.history._known == []  # nothing remembered, nothing taken over


def test_the_check_of_the_incremental_parse_catches_a_wrong_splice(monkeypatch, caplog):
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(SHIPPED), stabilizer_check_incremental=True)
        first, second = session_turns(2)
        addon.request(post("/v1/messages", first))
        real_continue = History._continue

        def wrong(self, known, raw, k):  # a splice that loses the newest message
            parsed = real_continue(self, known, raw, k)
            return parsed._replace(body={**parsed.body, "messages": parsed.body["messages"][:-1]})

        monkeypatch.setattr(History, "_continue", wrong)
        flow = post("/v1/messages", second)
        with caplog.at_level(logging.ERROR, logger=request_shaper.__name__):
            addon.request(flow)
        assert [record.levelname for record in caplog.records] == ["ERROR"]
    alone = post("/v1/messages", second)  # the whole parse went on: as a fresh addon shapes it
    fresh = RequestShaper()
    with taddons.context(fresh) as tctx:
        tctx.configure(fresh, stabilizer_policy=str(SHIPPED))
        fresh.request(alone)
    assert flow.request.content == alone.request.content


LITELLM_CONFIG = """
model_list:
  - model_name: my-deepseek
    litellm_params: {model: openai/deepseek-flash, api_base: "http://127.0.0.1:1"}
  - model_name: ds-native
    litellm_params: {model: anthropic/deepseek-v4-pro, api_base: "http://127.0.0.1:1/anthropic"}
  - model_name: qwen-plus
    litellm_params: {model: openai/deepseek-flash}
"""


def shaper_with_litellm_config(tmp_path, text: str):
    """A shaper under the shipped policy and the LiteLLM config `text`, configured in its context."""
    config = tmp_path / "litellm.yaml"
    config.write_text(text)
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(SHIPPED), stabilizer_litellm_config=str(config))
        yield addon


@pytest.fixture
def routed(tmp_path):
    yield from shaper_with_litellm_config(tmp_path, LITELLM_CONFIG)


def test_an_alias_gets_the_policy_of_the_model_behind_it(routed):
    flow = post("/v1/messages", recorded(model="my-deepseek"))
    routed.request(flow)
    meta = flow.metadata["stabilizer"]
    assert (meta["model"], meta["context_window"], meta["max_output_tokens"]) == ("my-deepseek", 1000000, 393216)
    # The OpenAI-compatible route: thinking in DeepSeek's fields, for LiteLLM's extra_body.
    body = sent(flow)
    assert body["model"] == "my-deepseek"
    assert body["extra_body"] == {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}
    assert "thinking" not in body and "output_config" not in body


def test_the_anthropic_route_gets_thinking_in_anthropic_fields(routed):
    flow = post("/v1/messages", recorded(model="ds-native"))
    routed.request(flow)
    body = sent(flow)
    assert flow.metadata["stabilizer"]["context_window"] == 1000000
    # Anthropic's own switch goes through as it is; nothing for LiteLLM's extra_body.
    # (Whether the effort goes too is addons/request/thinking.py's choice, not checked here.)
    assert body["thinking"] == {"type": "enabled"}
    assert "extra_body" not in body and "reasoning_effort" not in body


def test_a_policy_entry_for_the_name_sent_wins_over_the_model_behind_it(routed):
    flow = post("/v1/messages", recorded(model="qwen-plus"))
    routed.request(flow)
    meta = flow.metadata["stabilizer"]
    assert (meta["context_window"], meta["max_output_tokens"]) == (131072, 8192)
    assert sent(flow)["max_tokens"] == 8192 and "extra_body" not in sent(flow)


def test_a_name_the_litellm_config_does_not_list_gets_the_defaults(routed):
    flow = post("/v1/messages", recorded(model="unlisted"))
    routed.request(flow)
    assert flow.metadata["stabilizer"]["context_window"] == 131072


FALLBACK_CONFIG = """
model_list:
  - model_name: ds-native
    litellm_params: {model: anthropic/deepseek-v4-pro}
  - model_name: flash
    litellm_params: {model: anthropic/deepseek-flash}
  - model_name: qwen-plus
    litellm_params: {model: openai/qwen-plus}
  - model_name: local
    litellm_params: {model: openai/local}
router_settings:
  fallbacks: [{flash: [qwen-plus]}]
  context_window_fallbacks: [{local: [flash]}]
"""


@pytest.fixture
def with_fallbacks(tmp_path):
    yield from shaper_with_litellm_config(tmp_path, FALLBACK_CONFIG)


def test_a_request_is_shaped_for_the_fallbacks_litellm_may_send_it_to(with_fallbacks):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    body = {"model": "flash", "max_tokens": 100000, "messages": [{"role": "user", "content": [image]}]}
    flow = post("/v1/messages", body)
    with_fallbacks.request(flow)
    # qwen-plus's output cap (8192), not deepseek-flash's; both read images.
    assert sent(flow)["max_tokens"] == 8192
    assert sent(flow)["messages"][0]["content"][0]["type"] == "image"
    assert flow.metadata["stabilizer"]["context_window"] == 1000000
    # deepseek-v4-pro has no fallbacks: its own cap, and its own rule for images.
    flow = post("/v1/messages", {**body, "model": "ds-native"})
    with_fallbacks.request(flow)
    assert sent(flow)["max_tokens"] == 100000
    assert sent(flow)["messages"][0]["content"][0]["type"] == "text"


def test_a_context_window_fallback_sets_the_window_trimmed_to(with_fallbacks):
    # local's own window is the default 131072; deepseek-flash's (1M) is where LiteLLM sends more.
    flow = post("/v1/messages", long_history(turns=40, lines=2000) | {"model": "local"})
    with_fallbacks.request(flow)
    notes = flow.metadata["stabilizer"]
    assert notes["context_window"] == 1000000
    assert "trimmed_tokens" not in notes and notes["input_tokens"] > 131072


def test_bad_litellm_config_stops_start_up(tmp_path):
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="file not found"):
            tctx.configure(addon, stabilizer_litellm_config=str(tmp_path / "missing.yaml"))
        bad = tmp_path / "litellm.yaml"
        bad.write_text("model_list: 5\n")
        with pytest.raises(exceptions.OptionsError, match="model_list: expected a list"):
            tctx.configure(addon, stabilizer_litellm_config=str(bad))


VISION_POLICY = """\
models:
  text-only:
    accepted_block_types: [text, tool_use, tool_result]
    vision_model: seer
  seer: {}
"""
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


@pytest.fixture
def vision_shaper(tmp_path):
    policy = tmp_path / "stabilizer.yaml"
    policy.write_text(VISION_POLICY)
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, stabilizer_policy=str(policy))
        yield addon


def test_a_turn_that_brings_images_goes_to_the_vision_model_and_the_next_comes_back(vision_shaper):
    read = {"type": "tool_use", "id": "r1", "name": "Read", "input": {"file_path": "shot.png"}}
    result = {"type": "tool_result", "tool_use_id": "r1", "content": [PNG]}
    history = [
        {"role": "user", "content": "What does shot.png show?"},
        {"role": "assistant", "content": [read]},
        {"role": "user", "content": [result]},
    ]
    flow = post("/v1/messages", {"model": "text-only", "max_tokens": 100, "messages": history})
    vision_shaper.request(flow)
    assert sent(flow)["model"] == "seer"
    assert sent(flow)["messages"][2]["content"][0]["content"] == [PNG]
    routed = Change(ChangeKind.ROUTED, "routed to seer: the new turn brings images text-only does not read")
    assert routed in changes(flow)

    history += [{"role": "assistant", "content": "A cat."}, {"role": "user", "content": "Thanks. Now list files."}]
    flow = post("/v1/messages", {"model": "text-only", "max_tokens": 100, "messages": history})
    vision_shaper.request(flow)
    assert sent(flow)["model"] == "text-only"
    assert sent(flow)["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "[image omitted: text-only does not read images]"}
    ]


@pytest.mark.parametrize(
    "policy_text, litellm_models, expected",
    [
        (VISION_POLICY, ["text-only"], "models.text-only.vision_model: 'seer' is not a model_name in"),
        (
            VISION_POLICY.replace("seer: {}", "seer: {accepted_block_types: [text, tool_use, tool_result]}"),
            [],
            "models.text-only.vision_model: 'seer' does not read images by its own entry",
        ),
    ],
)
def test_a_vision_model_that_cannot_take_the_turn_stops_start_up(tmp_path, policy_text, litellm_models, expected):
    policy = tmp_path / "stabilizer.yaml"
    policy.write_text(policy_text)
    litellm = tmp_path / "litellm.yaml"
    litellm.write_text(
        json.dumps(
            {
                "model_list": [
                    {"model_name": name, "litellm_params": {"model": f"openai/{name}"}} for name in litellm_models
                ]
            }
        )
    )
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError) as caught:
            tctx.configure(
                addon, stabilizer_policy=str(policy), stabilizer_litellm_config=str(litellm) if litellm_models else ""
            )
        assert str(policy) in str(caught.value) and expected in str(caught.value)


def test_small_requests_are_shaped_while_a_large_one_is_counted(shaper, monkeypatch):
    # 20 MB of history to count: seconds of tokenizer work, which on the loop would hold every flow.
    body = recorded(model="qwen-plus")
    body["messages"] = [*body["messages"][:-1], {"role": "user", "content": "a long file: " + "word " * 4_000_000}]
    large = post("/v1/messages/count_tokens", body)
    other_session = post("/v1/messages?beta=true", recorded(model="qwen-plus"))
    turn = recorded(model="qwen-plus")
    next_turn = {**turn, "messages": [*turn["messages"], {"role": "assistant", "content": "ok"},
                                      {"role": "user", "content": "and now?"}]}  # fmt: skip
    same_session = [post("/v1/messages?beta=true", turn), post("/v1/messages?beta=true", next_turn)]
    # The worker thread is held inside the large count until the small ones are done: if they
    # waited for it, they would never be.
    counting, release = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()
    encoding = tokens._encoding()

    class Encoding:
        def encode_ordinary(self, text):
            if threading.get_ident() != loop_thread and not counting.is_set():
                counting.set()
                release.wait(60)
            return encoding.encode_ordinary(text)

    monkeypatch.setattr(tokens, "_encoding", lambda: Encoding())

    async def together():
        pending = shaper.request(large)
        assert pending is not None  # awaited by mitmproxy for this flow only
        task = asyncio.ensure_future(pending)
        try:
            assert await asyncio.to_thread(counting.wait, 60)
            for small in [other_session, *same_session]:
                assert shaper.request(small) is None  # shaped at once, on the loop
                assert Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192") in changes(small)
            assert not task.done()
        finally:
            release.set()
        await task

    asyncio.run(together())
    assert large.metadata["stabilizer"]["input_tokens"] > 4_000_000
    assert sent(same_session[1])["messages"][-1]["content"] == "and now?"


class LoopWork:
    """What the tokenizer did on the calling (event loop) thread, and elsewhere."""

    def __init__(self, monkeypatch):
        self.loop_thread = threading.get_ident()
        self.on_loop: list[tuple[str, int]] = []  # (what, characters or bytes)
        self.elsewhere: list[tuple[str, int]] = []
        encoding = tokens._encoding()

        class Encoding:
            def encode_ordinary(inner, text):
                self.note("encode", len(text))
                return encoding.encode_ordinary(text)

        monkeypatch.setattr(tokens, "_encoding", lambda: Encoding())

    def note(self, what: str, size: int) -> None:
        (self.on_loop if threading.get_ident() == self.loop_thread else self.elsewhere).append((what, size))


@pytest.mark.parametrize("case", ["20 MB of words", "12 MB of one letter"])
def test_no_large_piece_of_work_runs_on_the_event_loop(shaper, monkeypatch, case):
    work = LoopWork(monkeypatch)
    text = {"20 MB of words": "word " * 4_000_000, "12 MB of one letter": "a" * 12_000_000}[case]
    body = json.dumps({"model": "qwen-plus", "max_tokens": 100, "messages": [{"role": "user", "content": text}]})
    flow = post("/v1/messages/count_tokens", body.encode())
    handle(shaper, flow)
    assert work.elsewhere and not work.on_loop
    # Counted in slices: tiktoken holds the GIL while it builds each slice's list of tokens.
    assert max(size for what, size in work.elsewhere if what == "encode") <= tokens.SLICE_CHARS


def test_a_next_turn_of_a_session_stays_on_the_loop(shaper, monkeypatch):
    # Its few ms of work would cost more as a hop to the worker thread.
    handle(shaper, post("/v1/messages", recorded(model="qwen-plus")))
    work = LoopWork(monkeypatch)
    body = recorded(model="qwen-plus")
    body["messages"] = [*body["messages"], {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
    assert shaper.request(post("/v1/messages", body)) is None
    assert work.on_loop and not work.elsewhere


def test_lone_surrogates_are_repaired_and_said(shaper):
    # Claude Code cuts a string inside an emoji: the high half alone, which LiteLLM refuses (400) on every turn.
    raw = json.dumps(recorded(model="qwen-plus")).encode()[:-1] + b', "metadata": {"note": "x"}}'
    raw = raw.replace(b'"content": "', b'"content": "cut \\ud83d here, kept \\ud83d\\ude00, low \\udc00 ', 1)
    for turn in range(2):  # the next turn resends it: repaired again
        flow = post("/v1/messages", raw)
        handle(shaper, flow)
        sent_bytes = flow.request.get_content()
        assert b"\\ud8" not in sent_bytes.lower() and b"\\udc" not in sent_bytes.lower()
        text = json.dumps(json.loads(sent_bytes), ensure_ascii=False)
        assert "cut \ufffd here, kept \U0001f600, low \ufffd " in text
        repaired = Change(ChangeKind.REPAIRED, "replaced 2 lone UTF-16 surrogates with U+FFFD")
        assert repaired in changes(flow)


@pytest.mark.parametrize("provenance", [True, False])
def test_the_provenance_switch(provenance):
    # DeepSeek's thinking (its signature wrapped with its origin) in front of Claude, which verifies
    # signatures: dropped, and the answer's signatures to be named; off, it goes as it came, and no
    # origin is noted, so the response addon wraps none.
    shaper = RequestShaper()
    with taddons.context(shaper) as tctx:
        tctx.configure(shaper, stabilizer_policy=str(SHIPPED), stabilizer_thinking_provenance=provenance)
        thought = {"type": "thinking", "thinking": "Read a.", "signature": wrap("uuid-1", "deepseek-flash")}
        call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a.txt"}}
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "read a.txt"},
                {"role": "assistant", "content": [thought, call]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}]},
            ],
        }
        flow = post("/v1/messages", body)
        handle(shaper, flow)
    assert sent(flow)["messages"][1]["content"] == ([call] if provenance else [thought, call])
    assert flow.metadata["stabilizer"].get("origin") == ("claude-sonnet-4-6" if provenance else None)
