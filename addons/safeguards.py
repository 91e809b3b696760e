"""Auto mode: LiteLLM judges each tool call; its classifier call comes back here, to be shaped like any turn.

Claude Code's auto mode (the default permission mode of 2.1.332's TUI) sends
`safeguards: [{"type": "dangerous_tool_use", ...}]` with every request and
expects `safeguard_results` in the answer: a verdict for each tool call
(`evaluated` flagged or not, or `unavailable` with a reason). Without them it
runs no command its own rules cannot clear. LiteLLM 1.108.7 answers
`safeguards` itself (litellm/llms/anthropic/pass_through/safeguards.py) when
its config names a classifier model: as the answer ends it asks that model for
verdicts and puts them on the final message_delta, or on the JSON message. The
wait for the verdicts sits in LiteLLM's own async stream; a mitmproxy stream
callable is synchronous and could only wait by holding every other flow.
A classifier that fails, times out or answers no verdicts gives `unavailable`
with a reason, as Anthropic's API does, and Claude Code asks the user instead.

`stabilizer run` points that setting at an entry of its own whose api_base is
this proxy (addons/config/safeguards.py), so the classifier call arrives here
at SAFEGUARDS_ROUTE. SafeguardsClassifierCalls (before Upstream) gives it the
model that judges and the ordinary /v1/messages path, and from there it is a
turn like any other: the request addon shapes it under that model's policy
(stripped, capped, its thinking switched), and LiteLLM sends it to the
backend. Its usage stays LiteLLM's: Claude Code never counts it.

Which model judges (option stabilizer_safeguards_classifier): a model name of
the LiteLLM config, or `auto`: the `background_model` of the session's policy
entry, else the session's own model. LiteLLM's call names no session: it
judges the tool calls of the newest turn in flight that asked for verdicts, so
with sessions on different models at the same moment the newest one's
classifier judges. Empty: auto mode is not answered here (the request addon
strips `safeguards` like any unknown key).

Safeguards (after ResponsePatcher) keeps the turns in flight, and when one
ends it writes the verdicts its answer carried (the response addon notes
them) as changes of kind auto_mode (mitmweb: `~comment "auto mode"`), logs
them, and keeps the newest RECENT_TURNS for the status endpoint, with the
classifier call's own failure (an HTTP error of the backend) when there was one.
"""

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mitmproxy import ctx, exceptions, http

from addons.config.routes import UNKNOWN
from addons.flow.change import Change, ChangeKind
from addons.flow.kind import SAFEGUARDS_ROUTE, FlowKind, endpoint, flow_kind
from addons.flow.notes import add_changes, turn_notes
from addons.request_shaper import RequestShaper

logger = logging.getLogger(__name__)

AUTO = "auto"
RECENT_TURNS = 20
# On a classifier call: the id of the flow whose tool calls it judges, and the sentence for its
# changes, noted once the request addon has made the flow's notes.
JUDGES = "stabilizer_safeguards_judges"
CLASSIFIER_CALL = "stabilizer_safeguards_call"


@dataclass
class Turn:
    """A turn in flight that asked for verdicts."""

    model: str
    classifier: str
    started: float
    classifier_failure: str | None = None


def verdict_text(verdict: Any) -> str:
    """One verdict of safeguard_results, as words: "not flagged", "flagged: reason", "unavailable: timeout"."""
    if not isinstance(verdict, dict):
        return "malformed"
    if verdict.get("type") == "unavailable":
        return f"unavailable: {verdict.get('reason') or 'no reason'}"
    if verdict.get("outcome") == "flagged":
        return f"flagged: {verdict.get('explanation') or 'no reason'}"
    return "not flagged" if verdict.get("outcome") == "not_flagged" else "malformed"


def verdicts(results: Any) -> dict[str, str] | str:
    """tool_use id -> verdict_text, from an answer's safeguard_results; a sentence when the
    answer judged nothing (auto mode unsupported, or no results at all)."""
    if results is None:
        return "the answer carried no verdicts"
    entries = [entry for entry in results if isinstance(entry, dict)] if isinstance(results, list) else []
    found: dict[str, str] = {}
    for entry in entries:
        status = entry["status"] if isinstance(entry.get("status"), dict) else {}
        if status.get("type") != "available":
            return f"auto mode {status.get('type') or 'unknown'}"
        tool_uses = status.get("tool_uses")
        if isinstance(tool_uses, dict):
            found |= {str(tool_use_id): verdict_text(verdict) for tool_use_id, verdict in tool_uses.items()}
    return found


class SafeguardsClassifierCalls:
    """LiteLLM's classifier call: the model that judges, and the path LiteLLM serves."""

    def __init__(self, safeguards: "Safeguards"):
        self.safeguards = safeguards

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow_kind(flow) is not FlowKind.MESSAGES:
            return
        if endpoint(flow.request.path) != SAFEGUARDS_ROUTE:
            return
        flow.request.path = "/v1/messages"
        try:
            body = json.loads(flow.request.get_content(strict=False) or b"")
        except ValueError:
            return  # the request addon answers a body that is not JSON
        if not isinstance(body, dict):
            return
        judged, turn = self.safeguards.judged_turn()
        model = turn.classifier if turn is not None else self.safeguards.classifier_for(None)
        body["model"] = model
        flow.request.set_content(json.dumps(body, ensure_ascii=False).encode())
        if judged is not None:
            flow.metadata[JUDGES] = judged
        whose = f"{turn.model}'s turn" if turn is not None else "no turn in flight"
        flow.metadata[CLASSIFIER_CALL] = f"auto mode's classifier for {whose}: {model}"


class Safeguards:
    def __init__(self, shaper: RequestShaper):
        self.shaper = shaper
        self.calls = SafeguardsClassifierCalls(self)
        self.in_flight: dict[str, Turn] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_TURNS)

    def load(self, loader):
        loader.add_option(
            "stabilizer_safeguards_classifier",
            str,
            "",
            "Auto mode's classifier: a model name of the LiteLLM config that judges every tool call, or "
            "`auto`: the background_model of the session's policy entry, else the session's model. LiteLLM "
            "must send its classifier call here (`stabilizer run` sets it up). Empty: `safeguards` is stripped.",
        )

    def configure(self, updated):
        if "stabilizer_safeguards_classifier" not in updated and "stabilizer_litellm_config" not in updated:
            return
        chosen = ctx.options.stabilizer_safeguards_classifier
        if chosen not in ("", AUTO) and self.shaper.routes and chosen not in self.shaper.routes:
            raise exceptions.OptionsError(
                f"stabilizer_safeguards_classifier: {chosen!r} is not a model_name in the LiteLLM config "
                f"({ctx.options.stabilizer_litellm_config}); name one that is, or `auto`"
            )

    def classifier_for(self, model: str | None) -> str:
        """The model that judges a turn of `model` (None: a call with no turn in flight, judged as
        a model without a policy entry of its own would be, else by the config's first model)."""
        chosen = ctx.options.stabilizer_safeguards_classifier
        if chosen not in ("", AUTO):
            return chosen
        if model is None:
            first = next(iter(self.shaper.routes), "")
            return self.shaper.policy.defaults.background_model or first
        route = self.shaper.routes.get(model, UNKNOWN)
        return self.shaper.policy.for_model(model, route.model_id).background_model or model

    def judged_turn(self) -> tuple[str | None, Turn | None]:
        """The newest turn in flight that asked for verdicts, and its flow's id."""
        if not self.in_flight:
            return None, None
        flow_id = max(self.in_flight, key=lambda key: self.in_flight[key].started)
        return flow_id, self.in_flight[flow_id]

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow_kind(flow) is not FlowKind.MESSAGES:
            return
        notes = turn_notes(flow)
        if isinstance(call := flow.metadata.get(CLASSIFIER_CALL), str):
            add_changes(notes, [Change(ChangeKind.AUTO_MODE, call)])
        if notes.get("safeguards") is True:
            model = notes.get("model") or ""
            self.in_flight[flow.id] = Turn(model, self.classifier_for(model), time.monotonic())

    def response(self, flow: http.HTTPFlow) -> None:
        if (judged := flow.metadata.get(JUDGES)) is not None:
            response = flow.response
            if response is not None and response.status_code >= 400:
                self._classifier_failed(judged, f"HTTP {response.status_code}: {_error_message(response)}")
            return
        if (turn := self.in_flight.pop(flow.id, None)) is not None:
            self._judged(flow, turn)

    def error(self, flow: http.HTTPFlow) -> None:
        if (judged := flow.metadata.get(JUDGES)) is not None:
            self._classifier_failed(judged, flow.error.msg if flow.error else "failed")
        elif (turn := self.in_flight.pop(flow.id, None)) is not None:
            self._judged(flow, turn)

    def _classifier_failed(self, judged: str, failure: str) -> None:
        if (turn := self.in_flight.get(judged)) is not None:
            turn.classifier_failure = failure

    def _judged(self, flow: http.HTTPFlow, turn: Turn) -> None:
        notes = turn_notes(flow)
        found = verdicts(notes.get("safeguard_results"))
        if not found and not turn.classifier_failure:
            return  # a turn without tool calls: nothing was judged
        record: dict[str, Any] = {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": turn.model,
            "classifier": turn.classifier,
            "verdicts": found,
        }
        if turn.classifier_failure:
            record["classifier_failure"] = turn.classifier_failure
        self.recent.append(record)
        failure = f" (classifier call: {turn.classifier_failure})" if turn.classifier_failure else ""
        if isinstance(found, str):
            lines = [f"auto mode: {found}{failure}"]
        else:
            lines = [f"auto mode, {turn.classifier} on {tool_use_id}: {text}" for tool_use_id, text in found.items()]
            if failure and lines:
                lines[-1] += failure
        add_changes(notes, [Change(ChangeKind.AUTO_MODE, line) for line in lines])
        if lines:
            logger.info("%s: %s", turn.model, "; ".join(lines))

    def status(self) -> dict[str, Any]:
        """For the status endpoint: the classifier setting and the newest turns' verdicts."""
        return {"classifier": ctx.options.stabilizer_safeguards_classifier or None, "recent": list(self.recent)}


def _error_message(response: http.Response) -> str:
    text = response.get_text(strict=False) or ""
    try:
        error = json.loads(text).get("error")
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    message = message if isinstance(message, str) else text
    return message[:300]
