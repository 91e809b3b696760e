"""One large request does not hold the others: real mitmdump and LiteLLM.

A 12 MB request is counted and shaped in the request addon's worker thread
(seconds of tokenizer work). Another session's request that arrives meanwhile is
shaped on the event loop and answered before the large one is done.
"""

import json
import threading

from tests.backend import Text
from tests.procs import poll_until, post_json

MODEL = "plain-model"


def ask(url: str, key: str, content: str) -> tuple[int, dict]:
    status, _, raw = post_json(
        url + "/v1/messages",
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": content}]},
        {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
    )
    return status, json.loads(raw)


def test_another_sessions_request_is_answered_while_a_large_one_is_counted(own_proxy, fresh_backend, master_key):
    fresh_backend.responder = lambda body: Text("Not held up.")
    output = own_proxy.log.name
    large: dict[str, object] = {}

    def send_large() -> None:
        # 12 MB in one turn: more than any window, so it is counted whole and answered 400 here.
        large["answer"] = ask(own_proxy.url, master_key, "a long file: " + "word " * 2_400_000)

    sender = threading.Thread(target=send_large)
    sender.start()
    try:
        poll_until(
            lambda: "counted off the event loop" in open(output, errors="replace").read(),
            60,
            "the large request in the worker thread",
        )
        status, body = ask(own_proxy.url, master_key, "hi")
        # Answered while the large one is still being counted.
        assert "answer" not in large
        assert (status, body["content"][0]["text"]) == (200, "Not held up."), body
    finally:
        sender.join(120)
    status, body = large["answer"]  # type: ignore[misc]
    assert status == 400 and body["error"]["message"].startswith("prompt is too long"), body
