"""Thinking controls and reasoning round trips (addons/request/thinking.py), without a proxy.

Each request that shaping writes for DeepSeek's OpenAI-compatible route is also
put to the stand-in's own checks (tests/backend/), which reproduce DeepSeek's
documented rules: a combination it refuses is never sent. Which route a model
name takes: tests/pure/test_routes.py, tests/addons/test_routes.py.
"""

import itertools
import json
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.test import taddons

from addons.config.policy import ModelPolicy, ThinkingPolicy, load_policy
from addons.config.routes import ANTHROPIC, OPENAI
from addons.flow.change import Change, ChangeKind
from addons.flow.notes import changes
from addons.request.history import History
from addons.request.shaping import shape_request, with_reasoning_note
from addons.request.thinking import BUDGET_BANDS, PLACEHOLDER_REASONING, requested
from addons.request.trim import trim_request
from addons.request_shaper import RequestShaper
from tests.addons.test_request_shaper import post, sent
from tests.backend import PROFILES, REASONING_MISSING, check_request, reasoning_missing
from tests.backend.checks import check_messages_request
from tests.backend.providers.deepseek import THINKING_MISSING
from tests.llama.server import ANTHROPIC_ROUTE, LLAMA_ENTRY, MODEL_ID, OPENAI_ROUTE, write_policy
from tests.pure.test_trim import agent_session, policy_for, request_of

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED = load_policy(str(ROOT / "config" / "stabilizer.yaml"))
DEEPSEEK = SHIPPED.for_model("deepseek-flash")
TOOLS = [{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}]
NEXT_TURN = [{"role": "assistant", "content": [{"type": "text", "text": "More?"}]}, {"role": "user", "content": "no"}]


def claude_request(**fields) -> dict:
    """A Claude Code turn after a tool round trip: its thinking block, call and result."""
    return {
        "model": "deepseek-flash",
        "max_tokens": 32000,
        "stream": True,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "read a.txt"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should read it.", "signature": ""},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a.txt"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}]},
        ],
        **fields,
    }


def as_litellm_sends(request: dict) -> dict:
    """The Chat Completions body LiteLLM (1.108.7, 1.108.14) makes of a shaped request, as far as thinking
    goes (measured): extra_body merged in, thinking blocks become reasoning_content."""
    body = {
        "model": request["model"],
        "max_tokens": request["max_tokens"],
        "tools": request.get("tools"),
        "messages": [],
        **request.get("extra_body", {}),
    }
    for message in request["messages"]:
        content = message["content"] if isinstance(message["content"], list) else []
        thinking = "\n".join(
            block["thinking"] for block in content if block.get("type") == "thinking" and block.get("thinking")
        )
        converted = {"role": message["role"], "content": "..."}
        if message["role"] == "assistant" and thinking:
            converted["reasoning_content"] = thinking
        body["messages"].append(converted)
    return body


# --- what Claude Code asked ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({}, (None, None)),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, ("on", "high")),
        ({"thinking": {"type": "adaptive"}}, ("on", None)),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, ("off", None)),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, ("on", "low")),
        ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, ("on", "high")),
        ({"thinking": {"type": "enabled", "budget_tokens": 64000}}, ("on", "max")),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "output_config": {"effort": "max"}}, ("on", "max")),
        ({"output_config": {"effort": "low"}}, (None, "low")),
        ({"thinking": "yes", "output_config": ["high"]}, (None, None)),
    ],
)
def test_what_claude_code_asked(fields, expected):
    assert requested(fields) == expected


def test_budget_bands_rise():
    assert [bound for bound, _ in BUDGET_BANDS] == sorted(bound for bound, _ in BUDGET_BANDS)


# --- the OpenAI-compatible route -----------------------------------------------------------


@pytest.mark.parametrize(
    "fields, extra_body",
    [
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}},
            {"thinking": {"type": "enabled"}, "reasoning_effort": "high"},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
            {"thinking": {"type": "enabled"}, "reasoning_effort": "high"},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            {"thinking": {"type": "enabled"}, "reasoning_effort": "max"},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            {"thinking": {"type": "enabled"}, "reasoning_effort": "low"},
        ),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, {"thinking": {"type": "disabled"}}),
        ({"output_config": {"effort": "medium"}}, {"reasoning_effort": "high"}),
    ],
)
def test_deepseek_openai_route_gets_its_own_switch_and_effort(fields, extra_body):
    shaped = shape_request(claude_request(**fields), DEEPSEEK).request
    assert shaped["extra_body"] == extra_body
    assert "thinking" not in shaped and "output_config" not in shaped  # LiteLLM never sees Claude Code's
    assert check_request(as_litellm_sends(shaped), json.dumps(shaped), PROFILES["deepseek"]) is None


def test_nothing_asked_nothing_sent():
    shaped = shape_request(claude_request(), DEEPSEEK).request
    assert "extra_body" not in shaped


def test_a_model_that_cannot_turn_thinking_off_says_so():
    always = ModelPolicy(thinking=ThinkingPolicy(enable={"thinking": {"type": "enabled"}}))
    shaped = shape_request(claude_request(thinking={"type": "disabled"}), always)
    assert "extra_body" not in shaped.request
    assert Change(ChangeKind.THINKING, "thinking stays on: this model cannot turn it off") in shaped.changes


def test_a_model_that_never_thinks_loses_thinking_blocks_and_fields():
    plain = ModelPolicy(thinking=None)
    shaped = shape_request(claude_request(thinking={"type": "adaptive"}, output_config={"effort": "high"}), plain)
    assert "extra_body" not in shaped.request and "thinking" not in shaped.request
    assert "thinking" not in json.dumps(shaped.request["messages"])


# Claude Code's controls as they come, and odd ones.
thinking_fields = st.fixed_dictionaries(
    {},
    optional={
        "thinking": st.sampled_from([{"type": "adaptive"}, {"type": "disabled"}, {"type": "enabled"}])
        | st.builds(lambda budget: {"type": "enabled", "budget_tokens": budget}, st.integers(-5, 200_000))
        | st.none()
        | st.text(max_size=5),
        "output_config": st.builds(
            lambda effort: {"effort": effort},
            st.sampled_from(["low", "medium", "high", "xhigh", "max", "ultra", ""]) | st.none(),
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(thinking_fields, st.booleans())
def test_deepseek_never_gets_a_combination_it_refuses(fields, with_reasoning):
    request = claude_request(**fields)
    if not with_reasoning:  # a turn from before thinking was on: no thinking block
        request["messages"][1]["content"] = request["messages"][1]["content"][1:]
    shaped = shape_request(request, DEEPSEEK).request
    extra = shaped.get("extra_body", {})
    if extra.get("thinking") == {"type": "disabled"}:
        assert "reasoning_effort" not in extra
    backend_body = as_litellm_sends(shaped)
    assert check_request(backend_body, json.dumps(backend_body), PROFILES["deepseek"]) is None


def test_without_the_fill_deepseek_refuses_a_turn_without_reasoning():
    # The stand-in's rule, from the side that must fail: what the note prevents.
    request = claude_request()
    request["messages"][1]["content"] = request["messages"][1]["content"][1:]
    unfilled = as_litellm_sends(shape_request(request, ModelPolicy()).request)
    assert reasoning_missing(unfilled, PROFILES["deepseek"])
    assert check_request(unfilled, "{}", PROFILES["deepseek"]).body["error"]["message"] == REASONING_MISSING


# --- the Anthropic-compatible route --------------------------------------------------------


@pytest.mark.parametrize(
    "fields, thinking",
    [
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, {"type": "enabled"}),
        ({"thinking": {"type": "disabled"}}, {"type": "disabled"}),
        ({"output_config": {"effort": "low"}}, None),
        ({}, None),
    ],
)
def test_anthropic_route_gets_anthropic_fields(fields, thinking):
    shaped = shape_request(claude_request(**fields), DEEPSEEK, route=ANTHROPIC).request
    assert shaped.get("thinking") == thinking
    assert "extra_body" not in shaped and "output_config" not in shaped
    # Thinking blocks go back as Claude Code sent them, signature included; nothing is added.
    assert shaped["messages"][1] == claude_request()["messages"][1]


def test_anthropic_route_fills_a_turn_without_thinking_for_deepseek():
    # A turn another model wrote (Claude Code drops its thinking on /model and --continue).
    request = claude_request(thinking={"type": "adaptive"})
    request["messages"][1]["content"] = request["messages"][1]["content"][1:]
    unfilled = shape_request(request, ModelPolicy(), route=ANTHROPIC).request
    assert check_messages_request(unfilled, PROFILES["deepseek"]).body["error"]["message"] == THINKING_MISSING
    shaped = shape_request(request, DEEPSEEK, route=ANTHROPIC)
    assert shaped.request["messages"][1]["content"] == [PLACEHOLDER_REASONING, *request["messages"][1]["content"]]
    assert check_messages_request(shaped.request, PROFILES["deepseek"]) is None


# llama-server's entry (tests/llama/server.py): no switch on the Anthropic-compatible route, the turns
# that ask thinking off sent to the OpenAI-compatible one.
LLAMA = ModelPolicy.model_validate(LLAMA_ENTRY)


@pytest.mark.parametrize("fields", [{"thinking": {"type": "adaptive"}}, {"thinking": {"type": "disabled"}}, {}])
def test_an_anthropic_route_without_a_switch_gets_none(fields):
    shaped = shape_request(claude_request(**fields), LLAMA, route=ANTHROPIC)
    assert "thinking" not in shaped.request and "extra_body" not in shaped.request
    stays_on = Change(ChangeKind.THINKING, "thinking stays on: this route takes no switch")
    assert (stays_on in shaped.changes) == (fields.get("thinking") == {"type": "disabled"})


def test_a_turn_asking_thinking_off_goes_to_the_route_that_can_switch_and_the_next_comes_back(tmp_path):
    config = tmp_path / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {OPENAI_ROUTE}\n    litellm_params: {{model: openai/{MODEL_ID}}}\n"
        f"  - model_name: {ANTHROPIC_ROUTE}\n    litellm_params: {{model: anthropic/{MODEL_ID}}}\n"
    )
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            stabilizer_policy=str(write_policy(tmp_path / "stabilizer.yaml")),
            stabilizer_litellm_config=str(config),
        )
        flow = post("/v1/messages", claude_request(model=ANTHROPIC_ROUTE, thinking={"type": "disabled"}))
        addon.request(flow)
        assert sent(flow)["model"] == OPENAI_ROUTE
        assert sent(flow)["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}}
        routed = f"routed to {OPENAI_ROUTE}: thinking off, which {ANTHROPIC_ROUTE}'s route cannot switch"
        assert Change(ChangeKind.ROUTED, routed) in changes(flow)
        # The thinking of the history goes on as it came: the same model wrote it.
        assert sent(flow)["messages"][1] == claude_request()["messages"][1]
        flow = post("/v1/messages", claude_request(model=ANTHROPIC_ROUTE, thinking={"type": "adaptive"}))
        addon.request(flow)
        assert sent(flow)["model"] == ANTHROPIC_ROUTE and "thinking" not in sent(flow)


def test_the_shipped_llama_example_is_the_tested_entry():
    # config/stabilizer.yaml's commented llama.cpp entry, as a user uncomments it.
    text = (ROOT / "config" / "stabilizer.yaml").read_text()
    lines = text[text.index("  # local:\n") :].splitlines()
    example = "\n".join(
        line.removeprefix("  # ") for line in itertools.takewhile(lambda line: line.startswith("  # "), lines)
    )
    assert yaml.safe_load(example) == {"local": LLAMA_ENTRY | {"thinking_off_model": "local-llamacpp"}}


def test_a_thinking_off_model_needs_a_route_without_a_switch():
    with pytest.raises(ValueError, match="set thinking.anthropic_switch: none"):
        ModelPolicy.model_validate({"thinking_off_model": OPENAI_ROUTE})


# --- the history ---------------------------------------------------------------------------


def test_a_turn_without_thinking_gets_a_note_once():
    messages = claude_request()["messages"] + [
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "ok"},
    ]
    history = History()
    parsed = history.parse(orjson.dumps(claude_request(messages=messages)))
    first = shape_request(parsed.body, DEEPSEEK, memo=parsed.memo)
    shaped = first.request["messages"]
    assert shaped[1] == messages[1]  # had its own
    assert shaped[3]["content"] == [PLACEHOLDER_REASONING, {"type": "text", "text": "Done."}]
    assert Change(ChangeKind.THINKING, "added a no-reasoning note to 1 assistant turns") in first.changes
    assert with_reasoning_note(shaped[3]) is shaped[3] and with_reasoning_note(messages[2]) is messages[2]
    # Next turn: the same message object gives the same noted copy, from the memo.
    parsed = history.parse(orjson.dumps(claude_request(messages=[*messages, *NEXT_TURN])))
    again = shape_request(parsed.body, DEEPSEEK, memo=parsed.memo).request["messages"]
    assert parsed.reused >= 4 and again[3] is shaped[3]


def test_tool_turns_history_drops_reasoning_of_turns_without_tool_calls():
    policy = ModelPolicy(thinking=ThinkingPolicy(history="tool_turns"))
    request = claude_request()
    answer = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "plain", "signature": ""}, {"type": "text", "text": "A."}],
    }
    request["messages"] += [answer, {"role": "user", "content": "thanks"}]
    shaped = shape_request(request, policy)
    assert shaped.request["messages"][1] == request["messages"][1]  # the tool turn keeps its reasoning
    assert shaped.request["messages"][3]["content"] == [{"type": "text", "text": "A."}]
    assert Change(ChangeKind.STRIPPED, "removed blocks: thinking x1") in shaped.changes


# --- trimming a thinking session -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 40), st.integers(0, 10_000), st.integers(1_500, 12_000), st.sampled_from([OPENAI, ANTHROPIC]))
def test_trimming_never_separates_a_tool_call_from_its_reasoning(turns, seed, budget, route):
    session = agent_session(turns, seed)
    for index, message in enumerate(session):
        if message["role"] == "assistant" and index % 3:  # every third turn from before thinking was on
            message["content"].insert(0, {"type": "thinking", "thinking": f"reason {index}", "signature": f"s{index}"})
    thinking = DEEPSEEK.thinking
    policy = policy_for(budget, thinking=thinking)
    shaped = shape_request(request_of(session), policy, route=route)
    trimmed = trim_request(shaped.request, policy, shaped.reminders)
    if trimmed.too_long:
        return
    originals = {
        block["id"]: message for message in session for block in message["content"] if block.get("type") == "tool_use"
    }
    for message in trimmed.request["messages"]:
        calls = [block["id"] for block in message["content"] if block.get("type") == "tool_use"]
        if message["role"] != "assistant" or not calls:
            continue
        (original,) = {id(originals[call]): originals[call] for call in calls}.values()
        own = [block for block in original["content"] if block.get("type") == "thinking"]
        kept = [block for block in message["content"] if block.get("type") == "thinking"]
        if own:
            assert kept == own  # the call's own reasoning, with its signature, went with it
        else:
            assert kept == [PLACEHOLDER_REASONING]
    if route == OPENAI:
        body = as_litellm_sends(trimmed.request)
        assert check_request(body, json.dumps(body), PROFILES["deepseek"]) is None
    else:
        assert check_messages_request(trimmed.request, PROFILES["deepseek"]) is None
