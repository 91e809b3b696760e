"""Entry file for `mitmdump -s addons/stabilizer_addons.py`: the whole bundle, in order.

FlowClassifier notes what each request is as it arrives (its `requestheaders`
hook comes before every `request` hook), for the addons after it to read.
ProxyErrorAnswers turns mitmproxy's own error answers into Anthropic ones,
MasterKeyAuth refuses callers without the master key, Safeguards' first part
gives auto mode's classifier call (LiteLLM's) its model, ModelDirectory answers
GET /v1/models from the request addon's config and policy, Upstream decides where a
request goes (or answers it while LiteLLM is away), BodyDecoder decodes a
compressed body, RequestShaper makes the request acceptable to the model, LimitLearner sends a request the backend refused
for a limit it states again within it (before ResponsePatcher, which then patches
the second answer), ResponsePatcher makes the answer parseable by
Claude Code, Safeguards notes the verdicts on each turn's tool calls,
UpstreamIdleTimeout gives up a request LiteLLM stays silent on
(after the hooks that may answer, before the recorder taps the stream).
FlowMarker comments each flow with what was changed and registers the
"stabilizer" content view, whose originals TurnKeeper keeps (its first part
before anything changes the flow, the rest after ResponsePatcher, whose stream
it taps), and FlowCap bounds the flows mitmweb keeps (all for
`stabilizer run --web`). The FlowRecorder
(`stabilizer run --record FILE`) comes in two parts: the first copies what
arrives before anything changes it, the last writes the flow; both hold their
hooks only while recording. KeysHidden, after the recorder, replaces the key
headers of the flows mitmweb keeps once they went upstream. TurnKeeper, FlowCap
and KeysHidden are in the list under mitmweb only. LegacyLogEventsOff stops mitmproxy's deprecated
add_log events, which cost more than the log lines themselves, when no addon
takes them.
"""

from mitmproxy import ctx

from addons.body_decoder import BodyDecoder
from addons.classifier import FlowClassifier
from addons.idle_timeout import UpstreamIdleTimeout
from addons.inspection import FlowCap, FlowMarker, KeysHidden, TurnKeeper
from addons.legacy_log_events import LegacyLogEventsOff
from addons.limit_learner import LimitLearner
from addons.master_key_auth import MasterKeyAuth
from addons.model_directory import ModelDirectory
from addons.proxy_errors import ProxyErrorAnswers
from addons.recorder import FlowRecorder
from addons.request_shaper import RequestShaper
from addons.response_patcher import ResponsePatcher
from addons.safeguards import Safeguards
from addons.upstream import Upstream


def _keeps_flows() -> bool:
    """Whether the master keeps flows to show: mitmweb's "view" addon is loaded before scripts are.

    mitmdump keeps none. There TurnKeeper, FlowCap and KeysHidden would have nothing to
    tend, and leaving them out of the list spares every flow their hook calls (docs/benchmarks.md)."""
    master = getattr(ctx, "master", None)
    return master is not None and master.addons.get("view") is not None


recorder = FlowRecorder()
shaper = RequestShaper()
keeper = TurnKeeper()
safeguards = Safeguards(shaper)
under_mitmweb = _keeps_flows()

addons = [
    FlowClassifier(),
    recorder.arrivals,
    *([keeper.arrivals] if under_mitmweb else []),
    ProxyErrorAnswers(),
    MasterKeyAuth(),
    safeguards.calls,
    ModelDirectory(shaper),
    Upstream(lambda: {"safeguards": safeguards.status()}),
    BodyDecoder(),
    shaper,
    LimitLearner(shaper),
    ResponsePatcher(),
    safeguards,
    UpstreamIdleTimeout(),
    *([keeper] if under_mitmweb else []),
    FlowMarker(),
    *([FlowCap()] if under_mitmweb else []),
    recorder,
    *([KeysHidden()] if under_mitmweb else []),
    LegacyLogEventsOff(),
]
