"""Fold, strip and cap (addons/request/shaping.py) on the recorded Claude Code requests and made-up
ones; hypothesis: whatever the conversation, the shaped request holds only what the model takes.
"""

import copy
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from addons.config.policy import ModelPolicy, ThinkingPolicy, load_policy
from addons.flow.change import Change, ChangeKind
from addons.request.shaping import (
    INVALID_ARGUMENTS_NOTE,
    SYSTEM_REMINDER,
    add_text_blocks,
    cap_max_tokens,
    fold_system_messages,
    repaired_input,
    shape_request,
    strip_unaccepted,
)
from addons.request.thinking import PLACEHOLDER_REASONING

DATA = Path(__file__).parent.parent / "data"
SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "stabilizer.yaml"
DEEPSEEK = load_policy(str(SHIPPED)).for_model("deepseek-flash")
# A 128K model whose backend caps max_tokens at 8192 (what Claude Code's 32000 is capped to).
QWEN = load_policy(str(SHIPPED)).for_model("qwen-plus")


def recorded(name: str = "claude_code_request.json") -> dict:
    """A real request recorded from Claude Code 2.1.197 ("say hi", 85 KB)."""
    return json.loads((DATA / name).read_text())


def user(*content) -> dict:
    return {"role": "user", "content": list(content)}


def assistant(*content) -> dict:
    return {"role": "assistant", "content": list(content)}


def system(text) -> dict:
    return {"role": "system", "content": text}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(id_: str) -> dict:
    return {"type": "tool_use", "id": id_, "name": "Read", "input": {"file_path": "/tmp/x"}}


def tool_result(id_: str) -> dict:
    return {"type": "tool_result", "tool_use_id": id_, "content": "contents"}


def reminder(value: str) -> dict:
    return text(SYSTEM_REMINDER.format(value))


def cache_controls(request: dict) -> int:
    """cache_control keys where Anthropic allows them: system, tools, messages, blocks, nested blocks."""

    def count(items) -> int:
        found = 0
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                found += "cache_control" in item
                found += count(item.get("content"))
        return found

    return count(request.get("system")) + count(request.get("tools")) + count(request.get("messages"))


# --- the recorded request -----------------------------------------------------------------


def test_recorded_request_is_shaped_for_deepseek():
    original = recorded()
    before = copy.deepcopy(original)
    shaped = shape_request(original, DEEPSEEK)

    assert original == before  # the input is never mutated
    out = shaped.request
    assert set(out) == {"model", "messages", "system", "tools", "max_tokens", "stream", "extra_body"}
    # 32000 is within DeepSeek V4's [1, 393216]: not capped.
    assert out["stream"] is True and out["max_tokens"] == 32000
    # Claude Code's adaptive thinking at effort high, in DeepSeek's own fields (LiteLLM forwards extra_body).
    assert out["extra_body"] == {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}
    assert cache_controls(out) == 0 < cache_controls(original)
    assert [m["role"] for m in out["messages"]] == ["user"]
    # The mid-conversation system message (Claude Code's agent list) reaches the backend.
    agent_list = original["messages"][1]["content"]
    assert out["messages"][0]["content"][-1] == reminder(agent_list)
    assert shaped.reminders == [SYSTEM_REMINDER.format(agent_list)]
    assert shaped.changes == [
        Change(ChangeKind.FOLDED, "folded 1 system messages"),
        Change(ChangeKind.STRIPPED, "stripped keys: metadata, thinking, context_management, output_config"),
        Change(ChangeKind.STRIPPED, "removed cache_control x3"),
        Change(
            ChangeKind.THINKING,
            "thinking on, effort high -> extra_body={thinking: {type: enabled}, reasoning_effort: high}",
        ),
    ]
    json.dumps(out)


def test_recorded_request_is_capped_for_a_backend_with_a_small_output_limit():
    original = recorded()
    shaped = shape_request(original, QWEN)
    out = shaped.request
    # qwen-plus keeps the default thinking section: no switch or effort of its own to write.
    assert set(out) == {"model", "messages", "system", "tools", "max_tokens", "stream"}
    assert out["max_tokens"] == 8192
    assert shaped.changes == [
        Change(ChangeKind.FOLDED, "folded 1 system messages"),
        Change(ChangeKind.STRIPPED, "stripped keys: metadata, thinking, context_management, output_config"),
        Change(ChangeKind.STRIPPED, "removed cache_control x3"),
        Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192"),
    ]


def test_recorded_tool_roundtrip_keeps_the_pair():
    for policy in (DEEPSEEK, QWEN):
        out = shape_request(recorded("claude_code_tool_roundtrip_request.json"), policy).request
        roles = [m["role"] for m in out["messages"]]
        assert roles == ["user", "assistant", "user"]
        call = next(block for block in out["messages"][1]["content"] if block["type"] == "tool_use")
        assert call["id"] == out["messages"][2]["content"][0]["tool_use_id"] == "toolu_01"


def test_recorded_tool_roundtrip_gets_a_reasoning_note_for_deepseek():
    # DeepSeek refuses a request with tools whose earlier assistant turn lacks reasoning_content;
    # the turn Claude Code sent without thinking gets a note as its thinking block (LiteLLM's reasoning_content).
    shaped = shape_request(recorded("claude_code_tool_roundtrip_request.json"), DEEPSEEK)
    filled = shaped.request["messages"][1]["content"][0]
    assert filled == PLACEHOLDER_REASONING and filled["type"] == "thinking" and filled["thinking"].strip()
    assert Change(ChangeKind.THINKING, "added a no-reasoning note to 1 assistant turns") in shaped.changes
    # A backend that does not require reasoning gets the turn as it was.
    plain = shape_request(recorded("claude_code_tool_roundtrip_request.json"), QWEN)
    assert [block["type"] for block in plain.request["messages"][1]["content"]] == ["tool_use"]
    assert not any(change.kind is ChangeKind.THINKING for change in plain.changes)


# --- fold ---------------------------------------------------------------------------------


def test_system_message_before_an_assistant_turn_joins_the_previous_user_turn():
    request = {"messages": [user(text("task")), system("agents"), assistant(text("ok")), user(text("next"))]}
    folded, reminders = fold_system_messages(request)
    assert folded["messages"] == [user(text("task"), reminder("agents")), assistant(text("ok")), user(text("next"))]
    assert reminders == [SYSTEM_REMINDER.format("agents")]


def test_system_message_before_a_user_turn_goes_after_its_tool_results():
    request = {
        "messages": [
            user(text("task")),
            assistant(tool_use("a")),
            system([text("one"), {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}]),
            system("three"),
            user(tool_result("a"), text("more")),
        ]
    }
    folded, _ = fold_system_messages(request)
    assert folded["messages"][-1] == user(tool_result("a"), reminder("one\ntwo"), reminder("three"), text("more"))


def test_system_message_with_no_user_turn_beside_it_becomes_one():
    messages = [system("first"), assistant(text("a")), system("middle"), assistant(text("b")), system("end")]
    folded, _ = fold_system_messages({"messages": messages})
    assert folded["messages"] == [
        user(reminder("first")),
        assistant(text("a")),
        user(reminder("middle")),
        assistant(text("b")),
        user(reminder("end")),
    ]


def test_string_content_becomes_blocks_when_a_reminder_joins():
    folded, _ = fold_system_messages({"messages": [{"role": "user", "content": "hi"}, system("s")]})
    assert folded["messages"] == [user(text("hi"), reminder("s"))]


def test_no_system_message_returns_the_same_request():
    request = {"messages": [user(text("hi"))]}
    assert fold_system_messages(request) == (request, [])


def test_add_text_blocks_puts_blocks_after_tool_results():
    message = user(tool_result("a"), tool_result("b"), text("t"))
    added = add_text_blocks(message, [text("n")])
    assert added["content"] == [tool_result("a"), tool_result("b"), text("n"), text("t")]
    assert add_text_blocks(message, [text("n")], at_end=True)["content"][-1] == text("n")
    assert message["content"] == [tool_result("a"), tool_result("b"), text("t")]


conversation_items = st.lists(
    st.one_of(
        st.builds(system, st.text(min_size=1, max_size=20)),
        st.builds(lambda s: {"role": "user", "content": s}, st.text(max_size=10)),
        st.builds(lambda s: assistant(text(s)), st.text(max_size=10)),
    ),
    max_size=12,
)


@given(conversation_items)
def test_fold_keeps_every_system_text_in_a_user_turn(messages):
    folded, reminders = fold_system_messages({"messages": messages})
    texts = [
        block["text"]
        for message in folded["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
    ]
    expected = [SYSTEM_REMINDER.format(m["content"]) for m in messages if m["role"] == "system"]
    assert reminders == expected
    assert [t for t in texts if t in expected] == expected  # all of them, in order
    assert all(m["role"] != "system" for m in folded["messages"])
    non_system = [m for m in messages if m["role"] != "system"]
    assert len(folded["messages"]) >= len(non_system)


# --- strip --------------------------------------------------------------------------------


def test_keys_outside_the_allow_list_go_stream_stays_as_sent():
    for stream in (True, False):
        request = {"model": "m", "messages": [], "stream": stream, "top_k": 5, "thinking": {"type": "adaptive"}}
        out, changes = strip_unaccepted(request, ModelPolicy())
        assert out == {"model": "m", "messages": [], "stream": stream}
        assert changes == [Change(ChangeKind.STRIPPED, "stripped keys: top_k, thinking")]
    out, _ = strip_unaccepted({"model": "m", "messages": [], "top_k": 5}, ModelPolicy())
    assert "stream" not in out


def test_cache_control_goes_everywhere_but_tool_input_is_left_alone():
    marker = {"type": "ephemeral"}
    tool_input = {"cache_control": "user data, not a marker"}
    request = {
        "model": "m",
        "system": [{"type": "text", "text": "s", "cache_control": marker}],
        "tools": [{"name": "Read", "input_schema": {}, "cache_control": marker}],
        "messages": [
            user(
                {"type": "text", "text": "t", "cache_control": marker},
                {"type": "tool_result", "tool_use_id": "x", "content": [{**text("r"), "cache_control": marker}]},
            ),
            assistant({"type": "tool_use", "id": "y", "name": "Edit", "input": tool_input, "cache_control": marker}),
        ],
    }
    out, changes = strip_unaccepted(request, ModelPolicy())
    assert cache_controls(out) == 0
    assert out["messages"][1]["content"][0]["input"] is tool_input
    assert changes == [Change(ChangeKind.STRIPPED, "removed cache_control x5")]
    assert cache_controls(request) == 5


def test_server_tools_and_a_tool_choice_naming_one_are_removed():
    custom = {"name": "Read", "description": "", "input_schema": {}}
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    base = {"model": "m", "messages": [], "tools": [custom, {**custom, "name": "Bash", "type": "custom"}, web]}
    out, changes = strip_unaccepted({**base, "tool_choice": {"type": "tool", "name": "web_search"}}, ModelPolicy())
    assert [t["name"] for t in out["tools"]] == ["Read", "Bash"]
    assert "tool_choice" not in out
    assert changes == [
        Change(ChangeKind.STRIPPED, "removed server tools: web_search"),
        Change(ChangeKind.STRIPPED, "dropped tool_choice naming a removed tool"),
    ]

    out, _ = strip_unaccepted({**base, "tool_choice": {"type": "tool", "name": "Read"}}, ModelPolicy())
    assert out["tool_choice"] == {"type": "tool", "name": "Read"}

    only_server = {"model": "m", "messages": [], "tools": [web], "tool_choice": {"type": "auto"}}
    out, _ = strip_unaccepted(only_server, ModelPolicy())
    assert "tools" not in out and "tool_choice" not in out


THINKING = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
REDACTED = {"type": "redacted_thinking", "data": "xyz"}


def test_thinking_blocks_stay_by_default():
    messages = [
        user(text("q")),
        assistant(THINKING, REDACTED, tool_use("a")),
        user(tool_result("a")),
        assistant(THINKING, text("done")),
    ]
    request = {"model": "m", "messages": messages}
    assert ModelPolicy().thinking == ThinkingPolicy(history="all")
    assert strip_unaccepted(request, ModelPolicy()) == (request, [])
    assert strip_unaccepted(request, ModelPolicy(thinking=ThinkingPolicy(history="all"))) == (request, [])


def test_thinking_blocks_go_when_the_model_never_thinks():
    messages = [user(text("q")), assistant(THINKING, REDACTED, tool_use("a")), user(tool_result("a"))]
    request = {"model": "m", "messages": messages}
    out, changes = strip_unaccepted(request, ModelPolicy(thinking=None))
    assert out["messages"][1] == assistant(tool_use("a"))
    assert changes == [Change(ChangeKind.STRIPPED, "removed blocks: thinking x1, redacted_thinking x1")]
    assert out["messages"][0] is messages[0] and out["messages"][2] is messages[2]


def test_thinking_blocks_of_tool_turns_only():
    messages = [
        user(text("q")),
        assistant(THINKING, REDACTED, tool_use("a")),
        user(tool_result("a")),
        assistant(THINKING, text("the answer")),
        user(text("next")),
        assistant(REDACTED, text("x"), tool_use("b")),
        user(tool_result("b")),
    ]
    request = {"model": "m", "messages": messages}
    out, changes = strip_unaccepted(request, ModelPolicy(thinking=ThinkingPolicy(history="tool_turns")))
    # Turns that called a tool keep their reasoning; the turn that only answered loses it.
    assert out["messages"][1] == messages[1]
    assert out["messages"][3] == assistant(text("the answer"))
    assert out["messages"][5] == messages[5]
    assert changes == [Change(ChangeKind.STRIPPED, "removed blocks: thinking x1")]


def test_a_turn_left_empty_is_dropped_and_its_neighbours_joined():
    request = {
        "model": "m",
        "messages": [user(text("q")), assistant(THINKING), {"role": "user", "content": "again"}, assistant(text("a"))],
    }
    for policy in (ModelPolicy(thinking=None), ModelPolicy(thinking=ThinkingPolicy(history="tool_turns"))):
        out, changes = strip_unaccepted(request, policy)
        assert out["messages"] == [user(text("q"), text("again")), assistant(text("a"))]
        assert Change(ChangeKind.STRIPPED, "dropped 1 messages left empty") in changes
    # Kept by default: the thinking-only turn stays, nothing is joined.
    assert strip_unaccepted(request, ModelPolicy()) == (request, [])


def test_blocks_outside_the_allow_list_become_notes_also_inside_tool_results():
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
    result = {"type": "tool_result", "tool_use_id": "a", "content": [text("r"), image]}
    policy = ModelPolicy(accepted_block_types=["text", "tool_use", "tool_result"])
    out, changes = strip_unaccepted({"model": "deepseek-v4-pro", "messages": [user(result, text("q"), pdf)]}, policy)
    assert out["messages"][0]["content"] == [
        {**result, "content": [text("r"), text("[image omitted: deepseek-v4-pro does not read images]")]},
        text("q"),
        text("[document omitted: deepseek-v4-pro does not read documents]"),
    ]
    assert changes == [
        Change(ChangeKind.STRIPPED, "replaced blocks deepseek-v4-pro does not take with notes: image x1, document x1")
    ]


def test_what_is_text_already_stays_readable():
    plain = {
        "type": "document",
        "title": "notes.txt",
        "source": {"type": "text", "media_type": "text/plain", "data": "the notes"},
    }
    search = {
        "type": "search_result",
        "title": "Docs",
        "source": "https://example.com/docs",
        "content": [text("first"), text("second")],
        "citations": {"enabled": True},
    }
    reference = {"type": "tool_reference", "tool_name": "mcp__db__query"}
    unknown = {"type": "container_upload", "file_id": "f1"}
    out, _ = strip_unaccepted({"model": "m", "messages": [user(plain, search, reference, unknown)]}, ModelPolicy())
    assert out["messages"][0]["content"] == [
        text("notes.txt\nthe notes"),
        text("Docs\nhttps://example.com/docs\nfirst\nsecond"),
        text("[tool reference: mcp__db__query]"),
        text("[container_upload block omitted: m does not take it]"),
    ]


def test_citations_and_newer_tool_fields_go():
    cited = {"type": "text", "text": "a", "citations": [{"type": "char_location", "cited_text": "x"}]}
    tool = {
        "name": "Read",
        "description": "read",
        "input_schema": {"type": "object"},
        "defer_loading": True,
        "cache_control": {"type": "ephemeral", "scope": "global"},
    }
    request = {"model": "m", "messages": [user(text("q")), assistant(cited)], "tools": [tool]}
    out, changes = strip_unaccepted(request, ModelPolicy())
    assert out["messages"][1]["content"] == [text("a")]
    assert out["tools"] == [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
    assert changes == [
        Change(ChangeKind.STRIPPED, "removed cache_control x1"),
        Change(ChangeKind.STRIPPED, "removed fields: defer_loading x1, citations x1"),
    ]


def test_tools_over_the_limit_go_from_the_end_with_a_tool_choice_naming_one():
    tools = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(5)]
    request = {
        "model": "m",
        "messages": [user(text("q"))],
        "tools": tools,
        "tool_choice": {"type": "tool", "name": "t4"},
    }
    out, changes = strip_unaccepted(request, ModelPolicy(max_tools=3))
    assert out["tools"] == tools[:3]
    assert "tool_choice" not in out
    assert changes == [
        Change(ChangeKind.STRIPPED, "removed 2 tools over the model's limit of 3: t3, t4"),
        Change(ChangeKind.STRIPPED, "dropped tool_choice naming a removed tool"),
    ]
    assert strip_unaccepted({**request, "tools": tools[:3]}, ModelPolicy(max_tools=3))[1] == []


def test_server_tools_stay_for_a_backend_that_runs_them():
    tools = [
        {"name": "Read", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    request = {
        "model": "m",
        "messages": [user(text("q"))],
        "tools": tools,
        "tool_choice": {"type": "tool", "name": "web_search"},
    }
    assert strip_unaccepted(request, ModelPolicy(server_tools=True)) == (request, [])
    out, changes = strip_unaccepted(request, ModelPolicy())
    assert out["tools"] == tools[:1] and "tool_choice" not in out
    assert changes == [
        Change(ChangeKind.STRIPPED, "removed server tools: web_search"),
        Change(ChangeKind.STRIPPED, "dropped tool_choice naming a removed tool"),
    ]


def test_tool_inputs_that_are_not_objects_are_repaired_or_say_so():
    assert repaired_input({"path": "a"}) is None
    assert repaired_input('{"path": "a"}') == {"path": "a"}
    assert repaired_input("{'path': 'a', 'all': True}") == {"path": "a", "all": True}  # Qwen coder style
    for broken in (["a.txt"], "a.txt", '{"path": "a"', "", '{"a": 1}{"b": 2}', "{(1, 2): 3}", None, 7):
        written = broken if isinstance(broken, str) else json.dumps(broken)
        assert repaired_input(broken) == {"invalid_arguments": written, "note": INVALID_ARGUMENTS_NOTE}, broken
    request = {
        "model": "m",
        "messages": [
            user(text("q")),
            assistant({"type": "tool_use", "id": "a", "name": "Read", "input": ["a.txt"]}),
            user(tool_result("a")),
        ],
    }
    out, changes = strip_unaccepted(request, ModelPolicy())
    assert out["messages"][1]["content"][0]["input"] == {
        "invalid_arguments": '["a.txt"]',
        "note": INVALID_ARGUMENTS_NOTE,
    }
    assert changes == [Change(ChangeKind.REPAIRED, "repaired tool_use input that was not an object x1")]


def test_nothing_to_strip_returns_the_same_request():
    request = {"model": "m", "messages": [user(text("q"))], "max_tokens": 10}
    assert strip_unaccepted(request, ModelPolicy()) == (request, [])


# --- cap ----------------------------------------------------------------------------------


def test_max_tokens_is_capped_to_the_model():
    out, changes = cap_max_tokens({"max_tokens": 32000}, QWEN)
    assert out == {"max_tokens": 8192} and changes == [Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192")]
    for fine in ({"max_tokens": 8192}, {"max_tokens": 100}, {}, {"max_tokens": True}, {"max_tokens": "32000"}):
        assert cap_max_tokens(fine, QWEN) == (fine, [])
    # DeepSeek V4 takes up to 393216: Claude Code's 32000 passes, more is capped.
    assert cap_max_tokens({"max_tokens": 32000}, DEEPSEEK) == ({"max_tokens": 32000}, [])
    out, changes = cap_max_tokens({"max_tokens": 500000}, DEEPSEEK)
    assert out == {"max_tokens": 393216} and changes == [Change(ChangeKind.CAPPED, "capped max_tokens 500000->393216")]
    # The shipped defaults allow Claude Code's 32000 (a thinking model reasons from the same allowance).
    defaults = load_policy(str(SHIPPED)).defaults
    assert cap_max_tokens({"max_tokens": 32000}, defaults) == ({"max_tokens": 32000}, [])
    assert cap_max_tokens({"max_tokens": 64000}, defaults) == (
        {"max_tokens": 32000},
        [Change(ChangeKind.CAPPED, "capped max_tokens 64000->32000")],
    )


def test_count_tokens_shaping_does_not_cap():
    assert shape_request(recorded(), QWEN, cap=False).request["max_tokens"] == 32000
    assert shape_request({**recorded(), "max_tokens": 500000}, DEEPSEEK, cap=False).request["max_tokens"] == 500000


# --- every block type, every policy ---------------------------------------------------------

OTHER_BLOCKS = [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
    {"type": "search_result", "title": "t", "source": "s", "content": [text("found")]},
    {"type": "tool_reference", "tool_name": "mcp__x__y"},
    {"type": "thinking", "thinking": "hm", "signature": "s"},
    {"type": "redacted_thinking", "data": "xx"},
    {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
    {"type": "text", "text": "cited", "citations": [{"type": "char_location"}], "cache_control": {"type": "ephemeral"}},
]
TOOL_INPUTS = [{"path": "a"}, "{'path': 'a'}", ["a"], "a", '{"path": "a"', None]


@st.composite
def mixed_sessions(draw) -> dict:
    """Tool chains whose turns and tool results carry any block type, and inputs of any shape."""
    extra = st.lists(st.sampled_from(OTHER_BLOCKS), max_size=3)
    messages = [user(text("task"), *draw(extra))]
    for turn in range(draw(st.integers(0, 6))):
        calls = [f"t{turn}-{i}" for i in range(draw(st.integers(0, 2)))]
        uses = [
            {"type": "tool_use", "id": call, "name": "Read", "input": draw(st.sampled_from(TOOL_INPUTS))}
            for call in calls
        ]
        messages.append(assistant(*draw(extra), text("a"), *uses))
        results = [{"type": "tool_result", "tool_use_id": call, "content": [text("r"), *draw(extra)]} for call in calls]
        messages.append(user(*results, *draw(extra)) if results or draw(st.booleans()) else user(text("go on")))
    tools = [
        {"name": f"tool{i}", "input_schema": {"type": "object"}, "defer_loading": True}
        for i in range(draw(st.integers(0, 6)))
    ]
    tools.append({"type": "web_search_20250305", "name": "web_search"})
    return {"model": "m", "messages": messages, "tools": tools, "max_tokens": 100}


accepted_types = st.sets(st.sampled_from(["image", "document", "search_result", "tool_reference"])).map(
    lambda extra: ["text", "tool_use", "tool_result", *extra]
)


@given(mixed_sessions(), accepted_types, st.none() | st.just(ThinkingPolicy()), st.none() | st.integers(1, 4))
def test_the_shaped_request_holds_only_what_the_model_takes(request, accepted, thinking, max_tools):
    policy = ModelPolicy(accepted_block_types=accepted, thinking=thinking, max_tools=max_tools)
    out = shape_request(request, policy).request
    allowed = set(accepted) | ({"thinking", "redacted_thinking"} if thinking else set())

    def walk(blocks):
        for block in blocks:
            yield block
            if block["type"] == "tool_result":
                yield from walk(block["content"])

    blocks = [block for message in out["messages"] for block in walk(message["content"])]
    assert {block["type"] for block in blocks} <= allowed
    assert not any("cache_control" in block or "citations" in block for block in blocks)
    uses = [block for block in blocks if block["type"] == "tool_use"]
    assert all(isinstance(block["input"], dict) for block in uses)
    answered = [block["tool_use_id"] for block in blocks if block["type"] == "tool_result"]
    assert sorted(block["id"] for block in uses) == sorted(answered)
    assert len(out.get("tools", [])) <= (max_tools or 6)
    assert all(set(tool) <= {"name", "description", "input_schema", "type"} for tool in out.get("tools", []))
    # Nothing vanished unsaid: every block that went for another reason than thinking left a note.
    dropped = sum(
        1
        for message in request["messages"]
        for block in walk(message["content"])
        if block["type"] not in allowed and block["type"] not in ("thinking", "redacted_thinking")
    )
    notes = sum(
        1
        for block in blocks
        if block["type"] == "text" and block["text"].startswith("[") or block.get("text") in ("plain", "t\ns\nfound")
    )
    assert notes >= dropped
