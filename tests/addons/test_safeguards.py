"""Auto mode in the addons (addons/safeguards.py): which model judges, and the verdicts each turn got."""

import json

import pytest
import yaml
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from addons.classifier import FlowClassifier
from addons.flow.change import ChangeKind
from addons.flow.kind import SAFEGUARDS_ROUTE
from addons.flow.notes import changes, turn_notes
from addons.request_shaper import RequestShaper
from addons.safeguards import JUDGES, Safeguards

SAFEGUARDS = [{"type": "dangerous_tool_use", "classifier_context": {"permission_mode": "auto"}}]
CLASSIFIER_BODY = {
    "model": "stabilizer-safeguards",
    "max_tokens": 4096,
    "system": "You are the safety classifier for a coding agent",
    "messages": [{"role": "user", "content": "Tool calls to classify:\n[]"}],
}


def results(tool_uses: dict) -> list:
    return [{"type": "dangerous_tool_use", "status": {"type": "available", "tool_uses": tool_uses}}]


@pytest.fixture
def addons(tmp_path):
    config, policy = tmp_path / "litellm.yaml", tmp_path / "policy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "none"}}
                    for name in ("big", "small", "plain")
                ]
            }
        )
    )
    policy.write_text(yaml.safe_dump({"models": {"big": {"background_model": "small"}}}))
    shaper = RequestShaper()
    safeguards = Safeguards(shaper)
    with taddons.context(shaper, safeguards) as tctx:
        tctx.configure(
            shaper,
            stabilizer_policy=str(policy),
            stabilizer_litellm_config=str(config),
            stabilizer_safeguards_classifier="auto",
        )
        yield tctx, shaper, safeguards


def flow_for(body: dict, path: str = "/v1/messages?beta=true"):
    flow = tflow.tflow(req=tutils.treq(method=b"POST", path=path.encode(), content=json.dumps(body).encode()))
    FlowClassifier().requestheaders(flow)
    return flow


def turn(shaper: RequestShaper, safeguards: Safeguards, model: str):
    """A Claude Code turn in auto mode, through both hooks, as far as LiteLLM."""
    body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    flow = flow_for({**body, "safeguards": SAFEGUARDS})
    shaper.request(flow)
    assert json.loads(flow.request.content)["safeguards"] == SAFEGUARDS  # kept for LiteLLM
    safeguards.request(flow)
    return flow


def classifier_call(shaper: RequestShaper, safeguards: Safeguards):
    """LiteLLM's classifier call through the hooks, as far as LiteLLM."""
    flow = flow_for(CLASSIFIER_BODY, SAFEGUARDS_ROUTE)
    safeguards.calls.request(flow)
    shaper.request(flow)
    safeguards.request(flow)
    return flow


def test_the_classifier_is_the_background_model_else_the_sessions_own(addons):
    _, shaper, safeguards = addons
    for model, judge in [("big", "small"), ("plain", "plain")]:
        parent = turn(shaper, safeguards, model)
        call = classifier_call(shaper, safeguards)
        assert call.request.path == "/v1/messages"
        assert json.loads(call.request.content)["model"] == judge
        assert call.metadata[JUDGES] == parent.id
        assert [change.kind for change in changes(call)] == [ChangeKind.AUTO_MODE]
        safeguards.error(parent)


def test_a_chosen_classifier_judges_every_turn(addons):
    tctx, shaper, safeguards = addons
    tctx.configure(safeguards, stabilizer_safeguards_classifier="plain")
    turn(shaper, safeguards, "big")
    assert json.loads(classifier_call(shaper, safeguards).request.content)["model"] == "plain"
    with pytest.raises(exceptions.OptionsError, match="not a model_name"):
        tctx.configure(safeguards, stabilizer_safeguards_classifier="nowhere")


def test_without_the_option_safeguards_are_stripped(addons):
    tctx, shaper, safeguards = addons
    tctx.configure(safeguards, stabilizer_safeguards_classifier="")
    flow = flow_for(
        {"model": "big", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "safeguards": []}
    )
    shaper.request(flow)
    assert "safeguards" not in json.loads(flow.request.content)


def test_a_count_of_tokens_loses_safeguards(addons):
    _, shaper, _ = addons
    body = {"model": "big", "messages": [{"role": "user", "content": "hi"}], "safeguards": SAFEGUARDS}
    flow = flow_for(body, "/v1/messages/count_tokens?beta=true")
    shaper.request(flow)
    assert "safeguards" not in json.loads(flow.request.content)


def test_verdicts_and_a_failed_classifier_call_reach_the_status_and_the_flow(addons):
    _, shaper, safeguards = addons
    parent = turn(shaper, safeguards, "big")
    call = classifier_call(shaper, safeguards)
    call.response = tutils.tresp(status_code=503, content=b'{"error": {"message": "backend down"}}')
    safeguards.response(call)
    verdicts = {
        "toolu_1": {"type": "evaluated", "outcome": "flagged", "explanation": "pipes a download into sh"},
        "toolu_2": {"type": "unavailable", "reason": "error"},
    }
    turn_notes(parent)["safeguard_results"] = results(verdicts)
    parent.response = tutils.tresp()
    safeguards.response(parent)
    record = safeguards.status()["recent"][-1]
    assert record["model"] == "big" and record["classifier"] == "small"
    assert record["verdicts"] == {"toolu_1": "flagged: pipes a download into sh", "toolu_2": "unavailable: error"}
    assert record["classifier_failure"] == "HTTP 503: backend down"
    noted = [change.detail for change in changes(parent) if change.kind is ChangeKind.AUTO_MODE]
    assert noted[0] == "auto mode, small on toolu_1: flagged: pipes a download into sh"
    assert noted[1].endswith("unavailable: error (classifier call: HTTP 503: backend down)")
    assert not safeguards.in_flight


def test_a_turn_without_tool_calls_leaves_no_record(addons):
    _, shaper, safeguards = addons
    parent = turn(shaper, safeguards, "plain")
    turn_notes(parent)["safeguard_results"] = results({})
    parent.response = tutils.tresp()
    safeguards.response(parent)
    assert safeguards.status()["recent"] == [] and not changes(parent)
