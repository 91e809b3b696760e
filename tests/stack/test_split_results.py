"""Tool results split over consecutive user turns (issue 19, item 1).

Anthropic merges consecutive user turns, so `[assistant{tool_use a, tool_use b},
user[tool_result a], user[tool_result b]]` is a valid history. LiteLLM makes each
user turn its tool messages, then a user message with its text: a text that
shaping or trimming puts into the first of those turns lands between the tool
messages, and an OpenAI-compatible backend refuses the request on every later
turn. The property test over generated histories is in tests/pure/test_fuzz_transforms.py.
"""

import json

import pytest

from addons.request.shaping import defers_text, fold_system_messages
from addons.request.trim import OMITTED_NOTE, trim_request
from tests.backend import PROFILES, TOOL_MESSAGES_DUE, check_request
from tests.procs import post_json
from tests.pure.test_fuzz_transforms import tool_order_problem
from tests.pure.test_shaping import reminder, system
from tests.pure.test_trim import assistant, policy_for, request_of, text, tool_result, tool_use, user
from tests.stack.test_shaping import TOOLS, WINDOW_128K_MODEL, long_history, sse_event_types
from tests.workload import as_compaction_request


def split_results(*ids: str) -> list[dict]:
    """An assistant turn calling `ids`, then each result in a user turn of its own."""
    return [assistant(text("reading"), *map(tool_use, ids)), *(user(tool_result(id_, 300)) for id_ in ids)]


# --- where the text goes --------------------------------------------------------------------


def test_result_turns_followed_by_another_user_turn_defer_text():
    messages = [user(text("task")), *split_results("a", "b"), system("s"), user(text("more"))]
    assert [defers_text(messages, i) for i in range(len(messages))] == [False, False, True, True, False, False]
    # The last result turn of an assistant turn takes text: the next turn is the assistant's.
    assert not defers_text([*split_results("a", "b"), assistant(text("ok"))], 2)


def test_system_message_after_a_tool_use_goes_after_all_its_results():
    messages = [
        user(text("task")),
        assistant(tool_use("a"), tool_use("b")),
        system("s"),
        user(tool_result("a")),
        user(tool_result("b")),
        assistant(text("done")),
    ]
    folded, _ = fold_system_messages({"messages": messages})
    assert folded["messages"][2:5] == [
        user(tool_result("a")),
        user(tool_result("b"), reminder("s")),
        assistant(text("done")),
    ]


def test_system_message_between_result_turns_waits_for_the_users_words():
    messages = [user(text("task")), *split_results("a", "b", "c"), user(text("and then?"))]
    messages.insert(3, system("s"))  # after the result of a
    folded, _ = fold_system_messages({"messages": messages})
    results = [messages[2], *messages[4:6]]
    assert folded["messages"][2:] == [*results, user(reminder("s"), text("and then?"))]


def test_omission_note_goes_after_the_last_result_turn_of_the_tail():
    messages = [user(text("task"))]
    for turn in range(30):
        messages += split_results(f"t{turn}", f"u{turn}")
    trimmed = trim_request(request_of(messages), policy_for(3000))
    out = trimmed.request["messages"]
    assert trimmed.removed and not trimmed.too_long and tool_order_problem(out) is None
    (noted,) = [i for i, m in enumerate(out) if text(OMITTED_NOTE.format(trimmed.removed)) in m["content"]]
    assert [m["role"] for m in out[noted - 2 : noted + 1]] == ["assistant", "user", "user"]
    assert noted == len(out) - 1 or out[noted + 1]["role"] == "assistant"
    assert out[noted - 1] in messages  # the first result turn is as it was


# --- the stand-in refuses what the backends refuse ------------------------------------------

# What LiteLLM sends for tool, user, tool.
SPLIT_BY_TEXT = {
    "model": "m",
    "messages": [
        {"role": "user", "content": "task"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "r",
            "tool_calls": [
                {"id": f"call_{n}", "type": "function", "function": {"name": "Read", "arguments": "{}"}} for n in "ab"
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "1"},
        {"role": "user", "content": "a system reminder"},
        {"role": "tool", "tool_call_id": "call_b", "content": "2"},
    ],
}


@pytest.mark.parametrize("provider, message", [
    ("deepseek", TOOL_MESSAGES_DUE + " (insufficient tool messages following tool_calls message)"),
    ("openai", TOOL_MESSAGES_DUE + " The following tool_call_ids did not have response messages: call_b"),
    ("kimi", "an" + TOOL_MESSAGES_DUE[2:] + " The following tool_call_ids did not have response messages: call_b"),
    ("qwen", "<400> InternalError.Algo.InvalidParameter: " + TOOL_MESSAGES_DUE.replace("'", '"')
     + " The following tool_call_ids did not have response messages: message[3].role"),
])  # fmt: skip
def test_stand_in_refuses_text_between_tool_messages(provider, message):
    error = check_request(SPLIT_BY_TEXT, json.dumps(SPLIT_BY_TEXT), PROFILES[provider])
    assert error.status == 400 and error.body["error"]["message"] == message
    together = [*SPLIT_BY_TEXT["messages"][:3], SPLIT_BY_TEXT["messages"][4], SPLIT_BY_TEXT["messages"][3]]
    assert check_request({**SPLIT_BY_TEXT, "messages": together}, "", PROFILES[provider]) is None


# --- through the real stack -----------------------------------------------------------------


def split_round(turn: int) -> list[dict]:
    """Two parallel calls whose results come in two user turns, a system message right after
    the calls and another between the results (Claude Code's reminders come anywhere)."""
    a, b = f"toolu_{turn}a", f"toolu_{turn}b"
    return [
        assistant(text(f"turn {turn}"), tool_use(a), tool_use(b)),
        system(f"reminder after the calls {turn}"),
        user(tool_result(a)),
        system(f"reminder between the results {turn}"),
        user(tool_result(b)),
    ]


def assert_tool_messages_follow_their_calls(sent: list[dict]) -> None:
    for index, message in enumerate(sent):
        calls = [call["id"] for call in message.get("tool_calls") or []]
        answers = [m.get("tool_call_id") for m in sent[index + 1 : index + 1 + len(calls)]]
        assert answers == calls, sent[index : index + 1 + len(calls) + 1]


def send(url: str, request: dict, key: str) -> bytes:
    status, _, body = post_json(url + "/v1/messages", request, {"x-api-key": key})
    assert status == 200, body[:500]
    assert sse_event_types(body)[-1] == "message_stop"
    return body


def test_split_results_with_system_messages_are_accepted_turn_after_turn(stack, litellm, fresh_backend, master_key):
    history = [user(text("The task: read both files.")), *split_round(1)]
    request = {"model": "deepseek-flash", "max_tokens": 1024, "stream": True, "messages": history, "tools": TOOLS}
    # Straight to LiteLLM (no addons), a text between the two result turns is refused, in DeepSeek's words.
    between = [*history[:3], user(text("a user's words")), history[4]]
    status, _, body = post_json(
        litellm.url + "/v1/messages", {**request, "messages": between}, {"x-api-key": master_key}
    )
    assert status == 400 and b"insufficient tool messages following tool_calls message" in body, body[:500]

    send(stack.url, request, master_key)
    sent = fresh_backend.requests[-1]["messages"]
    assert_tool_messages_follow_their_calls(sent)
    assert "reminder between the results 1" in json.dumps(sent[-1])
    # The next turn, with another split round, goes through too.
    request["messages"] = [*history, assistant(text("read them")), *split_round(2)]
    send(stack.url, request, master_key)
    assert_tool_messages_follow_their_calls(fresh_backend.requests[-1]["messages"])


def test_trimmed_history_of_split_results_is_accepted_turn_after_turn(stack, fresh_backend, master_key):
    history = long_history(300)
    # Every tool round: a second call answered in a user turn of its own, a system message right after the calls.
    for index in range(len(history) - 4, 0, -2):
        call, result = history[index]["content"][1], history[index + 1]["content"][0]
        second = f"{call['id']}b"
        history[index] = {**history[index], "content": [*history[index]["content"], {**call, "id": second}]}
        history[index + 1 : index + 2] = [
            system(f"reminder {index}"),
            history[index + 1],
            user({**result, "tool_use_id": second}),
        ]
    # Sent as Claude Code's compaction request: a history this long is trimmed only then (an
    # ordinary turn of it is answered "prompt is too long").
    messages = as_compaction_request(history)
    request = {"model": WINDOW_128K_MODEL, "max_tokens": 8192, "stream": True, "messages": messages, "tools": TOOLS}
    send(stack.url, request, master_key)
    sent = fresh_backend.requests[-1]["messages"]
    assert len(sent) < len(history) and "were omitted" in json.dumps(sent)
    assert_tool_messages_follow_their_calls(sent)

    request["messages"] = as_compaction_request([*history, assistant(text("more")), *split_round(1)])
    send(stack.url, request, master_key)
    assert_tool_messages_follow_their_calls(fresh_backend.requests[-1]["messages"])
