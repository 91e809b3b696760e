"""The flow recorder: what it writes, and that no secret ever reaches the file. In the real
mitmdump in front of the real LiteLLM: tests/stack/test_recorder.py."""

import gzip
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import exceptions, http, io
from mitmproxy.addonmanager import traverse
from mitmproxy.test import taddons, tflow, tutils

from addons.flow.change import Change, ChangeKind
from addons.flow.notes import SENT, add_changes, changes, turn_notes
from addons.recorder import (
    PLACEHOLDER,
    FlowRecorder,
    StreamTee,
    is_secret_name,
    redact_json,
    redact_message,
    secret_values,
)

MASTER = "sk-master-0123456789abcdef"
PROVIDER = "sk-provider-fedcba9876543210"
SECRETS = [MASTER.encode(), PROVIDER.encode()]


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "x-api-key",
        "key",
        "token",
        "ANTHROPIC_AUTH_TOKEN",
        "access_token",
        "client_secret",
        "password",
        "DEEPSEEK_API_KEY",
        "LITELLM_MASTER_KEY",
        "refreshToken",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "input_tokens",
        "cache_read_input_tokens",
        "keyboard",
        "monkey",
        "tool_use_id",
        "keys",
        "stop_sequences",
        "PATH",
        "PWD",
        "tokenizer",
        "",
    ],
)
def test_plain_names(name):
    assert not is_secret_name(name)


def test_secret_values_come_from_secret_named_variables():
    environ = {
        "LITELLM_MASTER_KEY": MASTER,
        "DEEPSEEK_API_KEY": PROVIDER,
        "SHORT_KEY": "abc",
        "HOME": "/home/someone/long/path",
        "GH_TOKEN": "ghp_" + "x" * 20,
    }
    assert set(secret_values(environ)) == {MASTER.encode(), PROVIDER.encode(), b"ghp_" + b"x" * 20}
    assert secret_values({"A_KEY": "short", "B_KEY": "a-much-longer-secret"}) == [b"a-much-longer-secret"]


NAMES = st.sampled_from(["api_key", "apiKey", "token", "password", "name", "text", "max_tokens", "key", "items"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=20,
)


def expected_redaction(value):
    """The rule, written out plainly: strings under secret-named keys become the placeholder."""
    if isinstance(value, dict):
        return {
            name: PLACEHOLDER if is_secret_name(name) and isinstance(item, str) and item else expected_redaction(item)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [expected_redaction(item) for item in value]
    return value


@settings(deadline=None)
@given(JSON)
def test_redact_json_replaces_secret_strings_at_any_depth(value):
    redacted, changed = redact_json(value)
    assert redacted == expected_redaction(value)
    assert changed == (redacted != value)
    if not changed:
        assert redacted is value  # untouched bodies keep their bytes


def test_redact_message_covers_headers_query_and_a_compressed_body():
    body = {
        "model": "m",
        "api_key": PROVIDER,
        "nested": [{"token": "t-123456789"}],
        "messages": [{"role": "user", "content": f"my key is {MASTER}"}],
        "max_tokens": 10,
    }
    request = tutils.treq(path=b"/v1/messages?beta=true&key=" + MASTER.encode() + b"&page=2", content=b"")
    request.headers.update(
        {
            "authorization": f"Bearer {MASTER}",
            "x-api-key": MASTER,
            "cookie": "session=abcdef",
            "x-trace": f"trace-{MASTER}",
            "content-encoding": "gzip",
        }
    )
    request.raw_content = gzip.compress(json.dumps(body).encode())

    redact_message(request, SECRETS)

    for name in ("authorization", "x-api-key", "cookie"):
        assert request.headers[name] == PLACEHOLDER
    assert request.headers["x-trace"] == f"trace-{PLACEHOLDER}"
    assert "content-encoding" not in request.headers
    assert request.query["key"] == PLACEHOLDER and request.query["beta"] == "true" and request.query["page"] == "2"
    redacted = json.loads(request.content)
    assert redacted == {
        **body,
        "api_key": PLACEHOLDER,
        "nested": [{"token": PLACEHOLDER}],
        "messages": [{"role": "user", "content": f"my key is {PLACEHOLDER}"}],
    }
    assert MASTER.encode() not in request.content and PROVIDER.encode() not in request.content


def test_clean_body_keeps_its_bytes():
    content = b'{"model":"m",  "messages":[]}'
    request = tutils.treq(content=content)
    redact_message(request, SECRETS)
    assert request.content == content


def test_stream_tee_keeps_both_sides_and_passes_results_on():
    tee = StreamTee(lambda chunk: [chunk.upper()] if chunk else [b"!"])
    assert tee(b"ab") == [b"AB"] and tee(b"c") == [b"C"] and tee(b"") == [b"!"]
    assert (bytes(tee.received), bytes(tee.sent)) == (b"abc", b"ABC!")
    passthrough = StreamTee(True)
    assert passthrough(b"x") == [b"x"] and passthrough(b"") == []


# --- the addon pair, hooks called in mitmproxy's order ----------------------------------


SHAPED = Change(ChangeKind.STRIPPED, "shaped")


class Changer:
    """Stands in for the request and response addons between the recorder's two parts."""

    def request(self, flow):
        flow.request.content = b'{"shaped": true}'
        add_changes(turn_notes(flow), [SHAPED])

    def responseheaders(self, flow):
        if "event-stream" in flow.response.headers.get("content-type", ""):
            flow.response.stream = lambda chunk: [b"<" + chunk + b">"] if chunk else [b"<end>"]

    def response(self, flow):
        if not flow.response.stream:
            flow.response.content = b'{"patched": true}'


@pytest.fixture
def recording(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", PROVIDER)
    recorder, changer = FlowRecorder(), Changer()
    path = tmp_path / "out.flow"
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, stabilizer_record=str(path))
        chain = [recorder.arrivals, changer, recorder]

        def run(flow, hook, *args):
            for addon in traverse(chain):  # as mitmproxy does: nested addons' hooks too
                if hasattr(addon, hook):
                    getattr(addon, hook)(flow, *args)

        yield run, path
        tctx.configure(recorder, stabilizer_record="")  # closes the file


def read(path) -> list[http.HTTPFlow]:
    with path.open("rb") as file:
        return list(io.FlowReader(file).stream())


def new_flow() -> http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=b'{"original": true}'))
    flow.request.headers["x-api-key"] = MASTER
    return flow


def answer(flow: http.HTTPFlow, content_type: str, content: bytes = b"") -> None:
    flow.response = tutils.tresp(content=content)
    flow.response.headers["content-type"] = content_type


def test_whole_response_flow_is_written_as_it_arrived_with_what_was_sent(recording):
    run, path = recording
    flow = new_flow()
    run(flow, "request")
    answer(flow, "application/json", f'{{"upstream": true, "echo": "{MASTER}"}}'.encode())
    run(flow, "responseheaders")
    run(flow, "response")

    (written,) = read(path)
    assert written.request.content == b'{"original": true}'
    assert json.loads(written.response.content) == {"upstream": True, "echo": PLACEHOLDER}
    sent = written.metadata[SENT]
    assert http.Request.from_state(sent["request"]).content == b'{"shaped": true}'
    assert http.Response.from_state(sent["response"]).content == b'{"patched": true}'
    assert changes(written) == [SHAPED]  # a record, through the flow file as plain data
    assert written.request.headers["x-api-key"] == PLACEHOLDER
    assert MASTER.encode() not in path.read_bytes()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_streamed_response_is_written_whole_on_both_sides(recording):
    run, path = recording
    flow = new_flow()
    run(flow, "request")
    answer(flow, "text/event-stream")
    run(flow, "responseheaders")
    for chunk in (b"data: 1\n\n", f"data: {PROVIDER}\n\n".encode(), b""):
        flow.response.stream(chunk)
    run(flow, "response")
    run(flow, "error")  # a late error: the flow is written once

    (written,) = read(path)
    assert written.response.content == f"data: 1\n\ndata: {PLACEHOLDER}\n\n".encode()
    assert http.Response.from_state(written.metadata[SENT]["response"]).content == (
        f"<data: 1\n\n><data: {PLACEHOLDER}\n\n><end>".encode()
    )
    assert PROVIDER.encode() not in path.read_bytes()


def test_flow_cut_before_any_response_is_written_on_error(recording):
    run, path = recording
    flow = new_flow()
    run(flow, "request")
    flow.error = tflow.terr()
    run(flow, "error")
    (written,) = read(path)
    assert written.response is None and written.error is not None
    assert written.metadata[SENT]["response"] is None


def test_status_polls_are_not_recorded(recording):
    run, path = recording
    flow = tflow.tflow(req=tutils.treq(path=b"/_stabilizer/status"), resp=True)
    run(flow, "request")
    run(flow, "response")
    assert read(path) == []


def test_existing_file_is_truncated_and_made_private(tmp_path):
    path = tmp_path / "old.flow"
    path.write_bytes(b"old flows")
    path.chmod(0o644)
    recorder = FlowRecorder()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, stabilizer_record=str(path))
        assert path.read_bytes() == b""
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unwritable_file_stops_start_up(tmp_path):
    recorder = FlowRecorder()
    with taddons.context(recorder) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cannot write"):
            tctx.configure(recorder, stabilizer_record=str(tmp_path / "missing" / "out.flow"))


def test_without_a_file_no_flow_pays_a_hook_call(tmp_path):
    recorder = FlowRecorder()
    hooks = ("request", "responseheaders", "response", "error")

    def hooked() -> list[str]:
        return [hook for addon in traverse([recorder.arrivals, recorder]) for hook in hooks if hasattr(addon, hook)]

    with taddons.context(recorder) as tctx:
        assert hooked() == []
        tctx.configure(recorder, stabilizer_record=str(tmp_path / "out.flow"))
        assert hooked() == ["request", "response", "responseheaders", "response", "error"]
        tctx.configure(recorder, stabilizer_record="")
        assert hooked() == []
