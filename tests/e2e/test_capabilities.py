"""The real Claude Code reads an image on a text-only model, and the session goes on.

deepseek-v4-pro takes no image input; its OpenAI-compatible route answers 400
"unknown variant `image_url`, expected `text`" to a request that carries one,
and since Claude Code keeps the image in the history, to every later request of
the session. Through the stabilizer (the shipped policy) the image becomes a
note the model can read, and the prompt and the next two succeed. Likewise a
tool call whose arguments are not an object, which Claude Code sends back as
it came.
"""

import base64
import json

from tests.backend import Text, ToolCalls
from tests.claude import run_claude

MODEL = "deepseek-v4-pro"
NOTE = f"[image omitted: {MODEL} does not read images]"
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BAAQMBAAIAAf+Jo9kAAAAASUVORK5CYII="
)


def test_reading_an_image_on_a_text_only_model_keeps_the_session(stack, fresh_backend, master_key, tmp_path):
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    (cwd / "shot.png").write_bytes(PNG)

    def model(body: dict):
        history = json.dumps(body["messages"])
        if "Read shot.png" in json.dumps(body["messages"][-1]):
            return ToolCalls([("Read", {"file_path": str(cwd / "shot.png")})], reasoning="Look at the file.")
        if NOTE in history:
            return Text("I cannot see images: the screenshot reached me as a note.", reasoning="It is a note.")
        return Text("Nothing to see.", reasoning="No image.")

    fresh_backend.responder = model
    prompts = ["Read shot.png and tell me what it shows.", "Can you describe its colours?", "Fine, thanks."]
    results = []
    for index, prompt in enumerate(prompts):
        results.append(
            run_claude(
                prompt,
                base_url=stack.url,
                auth_token=master_key,
                model=MODEL,
                cwd=cwd,
                home=home,
                extra_args=("--continue",) if index else (),
                timeout=180,
            )
        )
        assert not results[-1]["is_error"], results[-1].describe()

    assert results[0]["result"] == "I cannot see images: the screenshot reached me as a note."
    exchanges = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert [e.status for e in exchanges] == [200] * len(exchanges)
    bodies = [e.body for e in exchanges]
    assert not any("image_url" in json.dumps(body) for body in bodies)
    # The Read result, from its answer on: as a note in every later request.
    read_at = next(i for i, body in enumerate(bodies) if NOTE in json.dumps(body))
    assert read_at >= 1 and all(NOTE in json.dumps(body) for body in bodies[read_at:])
    assert len(bodies) - read_at >= 3  # the prompt's answer and the two prompts after it


def test_tool_arguments_that_are_not_an_object_do_not_poison_the_session(stack, fresh_backend, master_key, tmp_path):
    # A GLM-style call whose arguments are a JSON array: Claude Code cannot run it and sends the
    # array back as tool_use.input, which Qwen refuses ("must be in JSON format") on every later turn.
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    (cwd / "a.txt").write_text("alpha\n")

    def model(body: dict):
        results = [message for message in body["messages"] if message["role"] == "tool"]
        if "Read a.txt" in json.dumps(body["messages"][-1]):
            return ToolCalls([("Read", json.dumps([str(cwd / "a.txt")]))])
        if len(results) == 1:
            return ToolCalls([("Read", {"file_path": str(cwd / "a.txt")})])
        return Text("It says alpha." if "alpha" in json.dumps(results) else "I could not read it.")

    fresh_backend.responder = model
    for index, prompt in enumerate(["Read a.txt.", "Thanks. Anything else in it?"]):
        result = run_claude(
            prompt,
            base_url=stack.url,
            auth_token=master_key,
            model="qwen-plus",
            cwd=cwd,
            home=home,
            extra_args=("--continue",) if index else (),
            timeout=180,
        )
        assert not result["is_error"], result.describe()
    exchanges = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert [e.status for e in exchanges] == [200] * len(exchanges)
    replayed = [
        json.loads(call["function"]["arguments"])
        for message in exchanges[-1].body["messages"]
        for call in message.get("tool_calls") or []
    ]
    assert replayed[0]["note"] == "the model wrote these arguments as something other than a JSON object"
    assert replayed[1] == {"file_path": str(cwd / "a.txt")}
