"""Flows recorded from real Claude Code sessions (tests/flows/), replayed through the addons.

Each file holds the /v1/messages flows of one scenario of tests/e2e/test_claude.py,
as addons/recorder.py writes them: the request as Claude Code sent it and the
response as LiteLLM sent it, with what the addons sent on in
flow.metadata["stabilizer_sent"]. Here every request goes through the request
addon again and every response through the response addon (a stream through
its stream callable, cut anywhere), under the policy the recording used; the
result must be what was sent at recording time.

After a Claude Code upgrade, or a deliberate change of what the addons send,
record them again with one command: `make flows`.
"""

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http, io
from mitmproxy.test import taddons

from addons.classifier import FlowClassifier
from addons.config.policy import load_policy
from addons.errors.anthropic import is_anthropic_error
from addons.flow.change import ChangeKind
from addons.flow.notes import SENT, changes
from addons.inspection import filter_words
from addons.limit_learner import LimitLearner
from addons.recorder import PLACEHOLDER
from addons.request_shaper import RequestShaper
from addons.response_patcher import ResponsePatcher
from tests.claude import pinned_version
from tests.e2e.test_claude import SCENARIOS
from tests.pure.test_stream import chunked, sdk_final_message

ROOT = Path(__file__).resolve().parent.parent.parent
FLOWS = ROOT / "tests" / "flows"
POLICY = ROOT / "tests" / "data" / "policy-small.yaml"
RERECORD = "record them again with `make flows`"


def load(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as file:
        return list(io.FlowReader(file).stream())


RECORDED = [(path.stem, index, flow) for path in sorted(FLOWS.glob("*.flow")) for index, flow in enumerate(load(path))]
IDS = [f"{name}-{index}" for name, index, _ in RECORDED]


def sent_request(flow: http.HTTPFlow) -> http.Request:
    return http.Request.from_state(flow.metadata[SENT]["request"])


def sent_response(flow: http.HTTPFlow) -> http.Response:
    return http.Response.from_state(flow.metadata[SENT]["response"])


def answered_by_the_request_addon(flow: http.HTTPFlow) -> bool:
    return any(change.kind is ChangeKind.REFUSED for change in changes(flow))


def replay_request(recorded: http.HTTPFlow) -> http.HTTPFlow:
    """The recorded client request through the request addon, as mitmproxy would call it."""
    flow = recorded.copy()
    flow.response, flow.metadata, flow.comment, flow.marked = None, {}, "", ""
    FlowClassifier().requestheaders(flow)
    shaper = RequestShaper()
    with taddons.context(shaper) as tctx:
        tctx.configure(shaper, stabilizer_policy=str(POLICY))
        shaper.request(flow)
    return flow


def upstream_flow(recorded: http.HTTPFlow) -> http.HTTPFlow:
    """What the response addon sees: the request as sent on, the response as it came back,
    and the request addon's notes from replaying the request."""
    flow = recorded.copy()
    flow.request = sent_request(recorded)
    flow.metadata = {"stabilizer": replay_request(recorded).metadata["stabilizer"]}
    return flow


def test_every_scenario_was_recorded_with_the_pinned_claude_code():
    assert {name for name, _, _ in RECORDED} == SCENARIOS, RERECORD
    for name, _, flow in RECORDED:
        assert flow.request.headers["user-agent"].startswith(f"claude-cli/{pinned_version()} "), (
            f"{name} was recorded with {flow.request.headers['user-agent']}: {RERECORD}"
        )


def test_no_key_is_in_the_flow_files():
    for path in FLOWS.glob("*.flow"):
        raw = path.read_bytes()
        # The test session's keys (tests/conftest.py) have these prefixes.
        assert b"sk-test-master-" not in raw and b"sk-fake-provider-" not in raw, path.name
    for name, _, flow in RECORDED:
        for request in (flow.request, sent_request(flow)):
            assert request.headers["authorization"] == PLACEHOLDER, name


@pytest.mark.parametrize("name, index, recorded", RECORDED, ids=IDS)
def test_request_addon_sends_what_was_sent(name, index, recorded):
    flow = replay_request(recorded)
    notes = flow.metadata["stabilizer"]
    recorded_notes = recorded.metadata["stabilizer"]
    # The response addon appended its own changes after the request addon's. A recording made
    # before changes were records holds their sentences alone, read as the kinds that earn the
    # same filter words (addons/flow/notes.py).
    made = changes(flow)
    before = changes(recorded)[: len(made)]
    assert [change.detail for change in before] == [change.detail for change in made], RERECORD
    assert filter_words(before, False) == filter_words(made, False)
    # The policy file is named by its path on the machine that recorded the flows.
    assert Path(recorded_notes["policy_file"]).name == Path(notes["policy_file"]).name == POLICY.name
    assert {**recorded_notes, "changes": None, "policy_file": None} == {**notes, "changes": None, "policy_file": None}
    if any(change.kind is ChangeKind.REFUSED for change in made):
        assert flow.response.content == sent_response(recorded).content
        return
    assert flow.response is None
    if answered_by_the_request_addon(recorded):
        # Refused only when the backend's refusal had taught a limit and the request was fitted
        # into it (addons/limit_learner.py): what went on is that second try, not this pass.
        return
    assert json.loads(flow.request.content) == json.loads(sent_request(recorded).content), RERECORD
    assert "anthropic-beta" not in flow.request.headers

    # What any shaped request must be, whatever the recording says.
    policy = load_policy(str(POLICY)).for_model(notes["model"])
    body = json.loads(flow.request.content)
    assert set(body) <= policy.accepted_keys
    assert body["max_tokens"] <= policy.max_output_tokens
    assert all(message["role"] in ("user", "assistant") for message in body["messages"])
    assert "cache_control" not in flow.request.text
    assert notes["input_tokens"] <= policy.input_budget(body["max_tokens"])


def streamed(flow: http.HTTPFlow) -> bool:
    return "text/event-stream" in flow.response.headers.get("content-type", "")


STREAMED = [case for case in RECORDED if streamed(case[2])]
WHOLE = [case for case in RECORDED if not streamed(case[2])]


@pytest.mark.parametrize("name, index, recorded", STREAMED, ids=[f"{n}-{i}" for n, i, _ in STREAMED])
@settings(deadline=None, max_examples=25)
@given(cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_stream_patched_in_any_chunks_is_what_the_client_got(name, index, recorded, cuts):
    flow = upstream_flow(recorded)
    addon = ResponsePatcher()
    with taddons.context(addon):
        addon.responseheaders(flow)
        assert callable(flow.response.stream)
        out = []
        for chunk in [*chunked(recorded.response.content, cuts), b""]:
            out += flow.response.stream(chunk)
        addon.response(flow)
    patched = b"".join(out)
    assert patched == sent_response(recorded).content, RERECORD
    message = sdk_final_message(patched)
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("name, index, recorded", WHOLE, ids=[f"{n}-{i}" for n, i, _ in WHOLE])
def test_whole_response_patched_is_what_the_client_got(name, index, recorded):
    # Through the response hooks in the bundle's order: a refusal that states a limit is learned
    # and the request fitted into it, or answered here (addons/limit_learner.py), then patched.
    # On a running loop, as under mitmdump: the addons log through it.
    async def replayed() -> http.HTTPFlow:
        flow = upstream_flow(recorded)
        shaper, patcher = RequestShaper(), ResponsePatcher()
        learner = LimitLearner(shaper)
        with taddons.context(shaper, learner, patcher) as tctx:
            tctx.configure(shaper, stabilizer_policy=str(POLICY))
            patcher.responseheaders(flow)
            assert not flow.response.stream
            if (pending := learner.response(flow)) is not None:
                await pending
            patcher.response(flow)
        return flow

    flow = asyncio.run(replayed())
    expected = sent_response(recorded)
    assert (flow.response.status_code, flow.response.content) == (expected.status_code, expected.content), RERECORD
    if flow.response.status_code >= 400:
        assert is_anthropic_error(json.loads(flow.response.content))


def test_the_backends_context_error_reaches_claude_code_as_prompt_too_long():
    (flow,) = [flow for name, _, flow in RECORDED if name == "context-error"]
    assert b"maximum context length" in flow.response.content
    error = json.loads(sent_response(flow).content)["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("prompt is too long: ")


def test_the_long_session_was_trimmed_on_its_last_turn():
    flows = [flow for name, _, flow in RECORDED if name == "long-session"]
    trimmed = [any(change.kind is ChangeKind.TRIMMED for change in changes(flow)) for flow in flows]
    assert trimmed == [False] * (len(flows) - 1) + [True]
    last = flows[-1]
    assert len(json.loads(sent_request(last).content)["messages"]) < len(last.request.json()["messages"])
