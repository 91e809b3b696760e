"""Limits learned from refusals (addons/config/learned.py), applied over the policy."""

import pytest

from addons.config.learned import LearnedLimits
from addons.config.policy import ModelPolicy

DEFAULTS = ModelPolicy()  # 131072 window, 32000 out, 4096 margin


def test_a_learned_output_cap_replaces_the_entrys():
    learned = LearnedLimits()
    assert learned.learn("m", "max_output_tokens", 8192, DEFAULTS)
    applied = learned.applied("m", DEFAULTS)
    assert (applied.max_output_tokens, applied.context_window) == (8192, DEFAULTS.context_window)
    assert learned.applied("other", DEFAULTS) is DEFAULTS


def test_a_limit_the_entry_already_keeps_is_not_learned():
    learned = LearnedLimits()
    assert not learned.learn("m", "context_window", DEFAULTS.context_window, DEFAULTS)
    assert not learned.learn("m", "temperature", 1, DEFAULTS)
    assert learned.applied("m", DEFAULTS) is DEFAULTS


@pytest.mark.parametrize("window", [2048, 4096, 36096, 36097, 65536])
def test_a_small_learned_window_still_leaves_a_prompt_budget(window):
    learned = LearnedLimits()
    assert learned.learn("m", "context_window", window, DEFAULTS)
    applied = learned.applied("m", DEFAULTS)
    assert applied.context_window == window
    # The rule the policy file's own check enforces: a prompt fits beside the answer and the margin.
    assert applied.input_budget(DEFAULTS.max_output_tokens) > 0
    assert applied.max_output_tokens <= DEFAULTS.max_output_tokens
