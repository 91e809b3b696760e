"""The flow recorder in the real mitmdump in front of the real LiteLLM: no key reaches the file."""

import json

from addons.recorder import PLACEHOLDER
from tests.addons.test_recorder import read
from tests.conftest import POLICY
from tests.procs import Mitmdump, post_json


def test_live_recording_holds_no_key(litellm, child_env, master_key, provider_key, fresh_backend, tmp_path):
    if litellm.process.poll() is not None:  # an earlier test killed it
        litellm.start()
    path = tmp_path / "live.flow"
    proxy = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=litellm.config).start(
        ("--set", f"stabilizer_record={path}")
    )
    try:
        proxy.wait_upstream(litellm.url, timeout=10)
        for stream in (True, False):
            body = {
                "model": "deepseek-flash",
                "max_tokens": 64,
                "stream": stream,
                "api_key": master_key,
                "messages": [{"role": "user", "content": f"repeat {master_key} and {provider_key}"}],
            }
            status, _, answer = post_json(proxy.url + "/v1/messages", body, {"x-api-key": master_key})
            assert status == 200 and master_key.encode() in answer  # the stand-in echoes what it got
    finally:
        proxy.stop()

    raw = path.read_bytes()
    assert master_key.encode() not in raw and provider_key.encode() not in raw
    streamed, whole = read(path)
    assert b"event: message_stop" in streamed.response.content  # the streamed body, in full
    assert json.loads(whole.request.content)["api_key"] == PLACEHOLDER
    assert whole.request.headers["x-api-key"] == PLACEHOLDER
