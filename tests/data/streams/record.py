"""Re-record the LiteLLM answers in this folder: `.venv/bin/python -m tests.data.streams.record`.

Starts the stand-in backend (tests/backend/) and the real LiteLLM proxy in
front of it (openai/<model> deployments, chat-completions routing for
/v1/messages), sends Anthropic /v1/messages?beta=true requests and saves the
bodies exactly as LiteLLM sent them. Files named `litellm-*` come from here;
the others are written by hand.
"""

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.backend import Backend, CloseMidEvent, Text, ToolCalls

HERE = Path(__file__).resolve().parent
LISTENING = re.compile(r"Uvicorn running on http://([\d.]+):(\d+)")


def start_litellm(config: Path, key: str) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "CONFIG_FILE_PATH": str(config),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": key,
    }
    code = 'import uvicorn; uvicorn.run("litellm.proxy.proxy_server:app", host="127.0.0.1", port=0)'
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    for line in iter(process.stderr.readline, b""):
        if match := LISTENING.search(line.decode(errors="replace")):
            return process, f"http://{match.group(1)}:{match.group(2)}"
    raise RuntimeError(f"LiteLLM exited with {process.wait()}")


def post(url: str, key: str, body: dict) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url + "/v1/messages?beta=true",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()
    except urllib.error.URLError as error:
        raise RuntimeError(f"request failed: {error}") from error


def request(model: str, stream: bool = True, tools: bool = False) -> dict:
    body = {
        "model": model,
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello and list the files in /tmp."}],
    }
    if tools:
        body["tools"] = [
            {
                "name": "Bash",
                "description": "Run a shell command",
                "input_schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                },
            }
        ]
    return body


def main() -> None:
    key = "sk-record-" + secrets.token_hex(8)
    with Backend() as backend, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "litellm.yaml"
        models = [
            {
                "model_name": name,
                "litellm_params": {"model": f"openai/{name}", "api_base": backend.base_url, "api_key": "sk-x"},
            }
            for name in ("deepseek-flash", "qwen-plus", "plain-model")
        ]
        demo = {"model": "openai/demo", "mock_response": "Hello from the demo model."}
        models.append({"model_name": "demo", "litellm_params": demo})
        config.write_text(
            yaml.safe_dump(
                {
                    "model_list": models,
                    "litellm_settings": {"drop_params": True, "use_chat_completions_url_for_anthropic_messages": True},
                    "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
                }
            )
        )
        process, url = start_litellm(config, key)
        try:
            too_long = {"messages": [{"role": "user", "content": "word " * 130000}], "max_tokens": 8000}
            cut = CloseMidEvent(after_events=3, reply=Text("This answer is cut short by the backend."))
            cases = [
                ("litellm-text-usage.sse", request("deepseek-flash"),
                 [Text("Hello! Here is what I can tell you about /tmp: nothing yet, let me look.",
                       reasoning="The user asked about /tmp; I have not looked yet.")], {}),
                ("litellm-text-no-usage.sse", request("qwen-plus"), [Text("Hi there. I will list the files now.")],
                 {"usage": "absent"}),
                ("litellm-text-null-usage.sse", request("plain-model"), [Text("Hello, world.")], {"usage": "null"}),
                ("litellm-text-zero-usage.sse", request("plain-model"), [Text("Zero usage here.")], {"usage": "zero"}),
                ("litellm-tool-use.sse", request("deepseek-flash", tools=True),
                 [ToolCalls([("Bash", {"command": "ls -la /tmp"})], text="Let me look.",
                            reasoning="Listing /tmp answers it.")], {}),
                ("litellm-tool-use-no-usage.sse", request("plain-model", tools=True),
                 [ToolCalls([("Bash", {"command": "ls /tmp"}), ("Bash", {"command": "pwd"})])], {"usage": "absent"}),
                # LiteLLM retries a request whose stream is cut before it sent anything: cut every try.
                ("litellm-cut-mid-event.sse", request("plain-model"), [cut] * 5, {}),
                ("litellm-demo-mock-stream.json", request("demo"), [], {}),
                ("litellm-demo-mock.json", request("demo", stream=False), [], {}),
                ("litellm-text-no-usage.json", request("plain-model", stream=False), [Text("Plain JSON, no usage.")],
                 {"usage": "absent"}),
                # DeepSeek's wording at V3's 128K window (V4's 1M would need a 5 MB request).
                ("litellm-context-error.json", request("deepseek-flash") | too_long, [], {"context_window": 131072}),
                ("litellm-qwen-context-error.json", request("qwen-plus") | too_long, [], {}),
            ]  # fmt: skip
            for name, body, replies, quirks in cases:
                backend.reset()
                backend.script(replies)
                with backend.quirks(**quirks):
                    try:
                        status, content_type, raw = post(url, key, body)
                    except RuntimeError as error:
                        print(f"{name}: {error}")
                        continue
                (HERE / name).write_bytes(raw)
                print(f"{name}: HTTP {status} {content_type} {len(raw)} bytes")
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
