"""Tool-use ids mapped to the target's rule (addons/request/tool_ids.py): for any ids, any
mix, the ids sent satisfy the rule, each tool_result still answers its tool_use, distinct ids
stay distinct, valid ids are untouched, and the same id maps the same way in every request."""

import re
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from addons.config.policy import ModelPolicy, ToolIdRuleName
from addons.flow.change import ChangeKind
from addons.messages.memo import Memo
from addons.request.shaping import shape_request
from addons.request.tool_ids import RULES, mapped_id, rule_for

RULE_NAMES = get_args(ToolIdRuleName)
# What each provider's docs say it takes, written out again (not taken from RULES); matched whole.
DOCUMENTED = {
    "anthropic": re.compile(r"[a-zA-Z0-9_-]+"),
    "openai": re.compile(r".{1,40}", re.DOTALL),
    "mistral": re.compile(r"[a-zA-Z0-9]{9}"),
}
# Ids as the providers write them, and anything else.
WRITTEN = st.sampled_from(
    [
        "toolu_01A09q90qw90lq917835lq9",
        "call_00_8a3c4d5e6f7a8b9c0d1e2f3a",
        "functions.Read:0",
        "functions.Bash:12",
        "chatcmpl-tool-0123456789abcdef0123456789abcdef",
        "aB3xK9mP2",
    ]
)
ids = st.one_of(WRITTEN, st.text(max_size=60))


def test_every_rule_is_documented():
    assert set(RULES) == set(DOCUMENTED) == set(RULE_NAMES)


@given(ids, st.sampled_from(RULE_NAMES))
def test_a_mapped_id_satisfies_the_rule_and_a_valid_one_is_untouched(tool_id, name):
    mapped = mapped_id(tool_id, RULES[name])
    assert DOCUMENTED[name].fullmatch(mapped)
    if DOCUMENTED[name].fullmatch(tool_id):
        assert mapped == tool_id
    assert mapped_id(mapped, RULES[name]) == mapped


@given(st.lists(ids, unique=True, max_size=40), st.sampled_from(RULE_NAMES))
def test_distinct_ids_stay_distinct(written, name):
    assert len({mapped_id(tool_id, RULES[name]) for tool_id in written}) == len(written)


def test_a_kimi_id_keeps_its_readable_part_for_claude():
    mapped = mapped_id("functions.Read:0", RULES["anthropic"])
    assert mapped.startswith("functions_Read_0_") and mapped != mapped_id("functions:Read.0", RULES["anthropic"])


def test_the_rule_of_a_target():
    assert rule_for(None, "claude-sonnet-4-6") is RULES["anthropic"]
    assert rule_for(None, "deepseek-flash") is None
    assert rule_for("mistral", "devstral-medium") is RULES["mistral"]


def session(written: list[str]) -> list[dict]:
    """A history whose assistant turns call tools with the `written` ids, answered in order."""
    messages: list[dict] = [{"role": "user", "content": "go"}]
    for index, tool_id in enumerate(written):
        call = {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": f"{index}.txt"}}
        result = {"type": "tool_result", "tool_use_id": tool_id, "content": str(index)}
        messages += [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]
    return messages


def tool_ids(request: dict, kind: str, field: str) -> list:
    return [
        block[field]
        for message in request["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == kind
    ]


@given(st.lists(ids, unique=True, min_size=1, max_size=12), st.sampled_from(RULE_NAMES))
def test_shaping_maps_every_pair_the_same_way_in_every_request(written, name):
    policy = ModelPolicy(tool_ids=name)
    request = {"model": "target", "max_tokens": 1000, "messages": session(written)}
    shaped = shape_request(request, policy)
    sent = tool_ids(shaped.request, "tool_use", "id")
    assert sent == tool_ids(shaped.request, "tool_result", "tool_use_id")
    assert all(DOCUMENTED[name].fullmatch(tool_id) for tool_id in sent)
    assert len(set(sent)) == len(sent)
    changed = sum(tool_id != mapped for tool_id, mapped in zip(written, sent, strict=True))
    mapped = [change for change in shaped.changes if change.kind == ChangeKind.REPAIRED]
    assert [change.detail for change in mapped] == (
        [f"mapped {2 * changed} tool ids to the form target takes"] if changed else []
    )
    # The next turn (a fresh memo: a restart) sends the same ids again.
    again = shape_request({**request, "messages": session([*written, "next"])}, policy, memo=Memo())
    assert tool_ids(again.request, "tool_use", "id")[:-1] == sent


def test_a_target_without_a_rule_gets_the_ids_as_they_came():
    request = {"model": "deepseek-flash", "max_tokens": 1000, "messages": session(["functions.Read:0"])}
    assert shape_request(request, ModelPolicy()).request is request
