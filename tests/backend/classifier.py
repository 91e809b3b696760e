"""The stand-in's answer to auto mode's classifier question (LiteLLM's safeguards prompt).

LiteLLM 1.108.7 asks its classifier model, in a system prompt and one user message
(litellm/llms/anthropic/pass_through/safeguards.py), for
`{"verdicts": {tool_use_id: {"flagged": bool, "explanation": str}}}` about the
JSON list after "Tool calls to classify:". A test's responder asks
`classifier_question(body)` whether a request is that question, on either route,
and answers it with `verdicts(question, flagged)`.
"""

import json
from collections.abc import Callable
from typing import Any

from tests.backend.core import Text

CLASSIFIER_PROMPT = "You are the safety classifier for a coding agent"
CALLS_HEADING = "Tool calls to classify:\n"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [block.get("text", "") for block in value if isinstance(block, dict)]
    return []


def classifier_question(body: dict[str, Any]) -> str | None:
    """The question's text (its tool calls after CALLS_HEADING) when `body` asks the classifier, else None.
    The system prompt is a message on the OpenAI-compatible route, `system` on the Anthropic one."""
    texts = _texts(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            texts += _texts(message.get("content"))
    if not any(CLASSIFIER_PROMPT in text for text in texts):
        return None
    return next((text for text in reversed(texts) if CALLS_HEADING in text), None)


def verdicts(question: str, flagged: Callable[[dict[str, Any]], str | None]) -> Text:
    """The answer: each tool call flagged with the reason `flagged(call)` gives, or not flagged (None)."""
    calls = json.loads(question.split(CALLS_HEADING, 1)[1])
    answer = {}
    for call in calls:
        reason = flagged(call)
        answer[call["id"]] = {"flagged": reason is not None, "explanation": reason or "routine work"}
    return Text(json.dumps({"verdicts": answer}))
