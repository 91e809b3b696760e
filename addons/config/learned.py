"""Limits a backend stated in its refusals, kept per policy entry while mitmdump runs.

A model without an entry of its own gets the policy's defaults (max_output_tokens
32000, context_window 131072). A backend that takes less says so in its 400
("the valid range of max_tokens is [1, 8192]", "maximum context length is 65536
tokens"): the response side reads it (addons/limit_learner.py), and every later
request for that entry is shaped within it (addons/request_shaper.py), until
mitmdump stops. The log names the policy line that keeps it for good.
"""

from addons.config.policy import ModelPolicy

# The policy settings a refusal can state.
LEARNABLE = ("max_output_tokens", "context_window")


class LearnedLimits:
    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, int]] = {}

    def learn(self, key: str, setting: str, value: int, policy: ModelPolicy) -> bool:
        """Keep `setting` at `value` for the entry `key`, whose settings are `policy` (learned ones
        applied); False when it already allows no more: a request within it was refused for another reason."""
        if setting not in LEARNABLE or value <= 0 or getattr(policy, setting) <= value:
            return False
        self._by_key[key] = {**self._by_key.get(key, {}), setting: value}
        return True

    def applied(self, key: str | None, policy: ModelPolicy) -> ModelPolicy:
        """`policy` (the entry `key`'s) with what was learned for `key` in place of its own values."""
        learned = self._by_key.get(key) if key is not None else None
        return _with_room_for_a_prompt(policy.model_copy(update=learned)) if learned else policy


def _with_room_for_a_prompt(policy: ModelPolicy) -> ModelPolicy:
    """A learned window that the entry's max_output_tokens and safety margin would fill (a policy
    file cannot say that: its check refuses it) keeps a sixteenth at most as the margin and gives
    the answer at most half of the rest, so that a prompt still has a budget."""
    if policy.context_window > policy.max_output_tokens + policy.safety_margin_tokens:
        return policy
    margin = min(policy.safety_margin_tokens, policy.context_window // 16)
    answer = max(1, min(policy.max_output_tokens, (policy.context_window - margin) // 2))
    return policy.model_copy(update={"safety_margin_tokens": margin, "max_output_tokens": answer})
