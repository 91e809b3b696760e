"""LiteLLM's fallback chains as the request addon reads them, and the policy a chain is shaped by."""

from hypothesis import given
from hypothesis import strategies as st

from addons.config.fallbacks import Chain, chain_policy, chains_of
from addons.config.policy import DEFAULT_ACCEPTED_KEYS, ModelPolicy, ThinkingPolicy
from addons.config.routes import ANTHROPIC
from addons.request.shaping import shape_request

NAMES = ("a", "b", "c", "d")


def test_chains_follow_fallbacks_of_fallbacks_and_context_ones():
    config = {
        "router_settings": {
            "fallbacks": [{"a": ["b"]}, {"b": ["c", "a"]}],
            "context_window_fallbacks": [{"a": ["d"]}],
        }
    }
    chains = chains_of(config, NAMES)
    assert chains["a"] == Chain(reached=("b", "d", "c"), larger_windows=("d",))
    assert chains["b"] == Chain(reached=("c", "a", "d"), larger_windows=())
    assert "c" not in chains and "d" not in chains


def test_litellm_settings_serve_where_router_settings_say_nothing():
    # LiteLLM's Router: `fallbacks or litellm.fallbacks`, which litellm_settings sets.
    config = {
        "router_settings": {"fallbacks": [{"a": ["b"]}]},
        "litellm_settings": {"fallbacks": [{"c": ["d"]}], "context_window_fallbacks": [{"c": ["a"]}]},
    }
    chains = chains_of(config, NAMES)
    assert set(chains) == {"a", "c"}
    assert chains["c"] == Chain(reached=("a", "b"), larger_windows=("a",))


def test_every_model_falls_back_by_star_or_default_fallbacks():
    assert chains_of({"router_settings": {"fallbacks": [{"*": ["d"]}]}}, NAMES)["a"].reached == ("d",)
    chains = chains_of({"litellm_settings": {"default_fallbacks": ["d"]}, "router_settings": {}}, NAMES)
    assert set(chains) == {"a", "b", "c"}


def test_a_config_without_fallbacks_or_with_odd_ones_has_no_chains():
    assert chains_of({"router_settings": {"disable_cooldowns": True}}, NAMES) == {}
    assert chains_of({"router_settings": {"fallbacks": ["b", {"a": "b"}, 5]}}, NAMES) == {}
    assert chains_of(None, NAMES) == {}


DEEPSEEK = ModelPolicy(
    context_window=1000000,
    max_output_tokens=393216,
    thinking=ThinkingPolicy(history="all", require_reasoning=True),
)
QWEN = ModelPolicy(max_output_tokens=8192, thinking=ThinkingPolicy(history="tool_turns"))


def test_the_primary_keeps_its_thinking_and_a_fallback_wanting_reasoning_adds_notes():
    combined = chain_policy(QWEN, [DEEPSEEK], [])
    assert combined.thinking == ThinkingPolicy(history="all", require_reasoning=True)
    assert chain_policy(DEEPSEEK, [QWEN], []).thinking == DEEPSEEK.thinking
    tool_turn = [
        {"role": "user", "content": "read a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "A"}]},
    ]
    request = {"model": "m", "max_tokens": 100, "messages": tool_turn}

    def noted(target: str) -> bool:
        shaped = shape_request(request, combined, route=ANTHROPIC, target=target)
        return shaped.request["messages"][1]["content"][0]["type"] == "thinking"

    # A primary that checks signatures (Claude) would refuse the unsigned note: it gets none.
    assert noted("qwen3.7-plus") and not noted("claude-sonnet-4-6")


def test_no_fallbacks_leave_the_policy_as_it_is():
    assert chain_policy(QWEN, [], []) is QWEN


policies = st.builds(
    ModelPolicy,
    context_window=st.integers(50000, 2000000),
    max_output_tokens=st.integers(1, 40000),
    accepted_keys=st.sets(st.sampled_from(sorted(DEFAULT_ACCEPTED_KEYS | {"thinking", "top_k"}))).map(
        lambda keys: frozenset(keys | {"model", "messages"})
    ),
    accepted_block_types=st.sets(st.sampled_from(["image", "document", "search_result"])).map(
        lambda kinds: frozenset(kinds | {"text", "tool_use", "tool_result"})
    ),
    server_tools=st.booleans(),
    max_tools=st.none() | st.integers(1, 200),
)


@given(policies, st.lists(policies, min_size=1, max_size=4), st.data())
def test_every_model_of_the_chain_takes_what_its_policy_lets_through(primary, reached, data):
    larger = data.draw(st.lists(st.sampled_from(reached), max_size=len(reached)))
    combined = chain_policy(primary, reached, larger)
    for policy in (primary, *reached):
        assert combined.max_output_tokens <= policy.max_output_tokens
        assert combined.accepted_keys <= policy.accepted_keys
        assert combined.accepted_block_types <= policy.accepted_block_types
        assert not combined.server_tools or policy.server_tools
        assert policy.max_tools is None or (combined.max_tools or 0) <= policy.max_tools
    # Trimmed to the largest window a request can still be answered in; never below the primary's.
    assert combined.context_window == max(policy.context_window for policy in (primary, *larger))
    # Still a policy that validates (its prompt budget is above zero).
    assert ModelPolicy.model_validate(combined.model_dump()) == combined
