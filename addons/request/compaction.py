"""Claude Code's own compaction request, told from the turns it summarises.

Claude Code 2.1.332 asks for its summary by adding its instructions as a text
block to the last user message of the history it sends (captured 2026-12-06,
tests/e2e/test_compaction_after_trim.py): the whole history, however long, goes
with it. That request must never be refused for the length of its history (the
bound of addons/request/trim.py): it is what makes the history short again.
"""

from typing import Any

from addons.request.shaping import role_of

# The sentence of Claude Code's summary instructions that names the task (2.1.x).
SUMMARY_INSTRUCTION = "create a detailed summary of the conversation"


def is_compaction_request(messages: list[Any]) -> bool:
    """Whether the last user message carries Claude Code's request for a summary."""
    last = next((message for message in reversed(messages) if role_of(message) == "user"), None)
    content = last.get("content") if isinstance(last, dict) else None
    blocks = content if isinstance(content, list) else [{"text": content}]
    return any(
        isinstance(block, dict) and isinstance(text := block.get("text"), str) and SUMMARY_INSTRUCTION in text
        for block in blocks
    )
