"""What a request is, worked out once from its method and path as it arrived.

FlowClassifier (addons/classifier.py) notes the kind on every flow before any
addon changes the request (Upstream puts an --upstream path prefix in front of
the path), and every addon reads the note instead of the path: flow_kind(), or
the note itself where a hook only ever runs behind FlowClassifier (the body
decoder's and the request addon's, on every Messages turn).
The note is the kind's string under KIND in flow.metadata: mitmproxy writes
flow.metadata into flow files as plain data.
"""

import enum
import functools
import re
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy import http

KIND = "stabilizer_kind"

# Answered by the Upstream addon itself; read by `stabilizer run` and `stabilizer doctor`.
STATUS_PATH = "/_stabilizer/status"
# Where LiteLLM sends auto mode's classifier call (its api_base, addons/config/safeguards.py; LiteLLM
# appends /v1/messages): a Messages turn, which addons/safeguards.py gives its model and path.
SAFEGUARDS_PREFIX = "/_stabilizer/safeguards"
SAFEGUARDS_ROUTE = SAFEGUARDS_PREFIX + "/v1/messages"


class FlowKind(enum.StrEnum):
    MESSAGES = "messages"  # POST /v1/messages (Claude Code adds `?beta=true`): shaped, its answer patched
    COUNT_TOKENS = "count_tokens"  # POST /v1/messages/count_tokens: shaped but not trimmed
    NOT_POSTED = "not_posted"  # either of those routes with another method: answered 405 here
    STATUS = "status"  # STATUS_PATH, any method: answered here whatever the key
    # `/`, any method: answered here whatever the key (Claude Code sends `HEAD /` first;
    # LiteLLM would serve its landing page).
    ROOT = "root"
    # GET /v1/models: answered here from the LiteLLM config and the policy (addons/model_directory.py),
    # the list Claude Code's model picker shows with gateway model discovery on.
    MODELS = "models"
    OTHER = "other"  # anything else: LiteLLM's to serve


# Each kind by its value: flow_kind() reads the note on every hook of every flow, and calling
# the enum class (FlowKind(value)) is a Python call where this is a dict lookup.
_KINDS = {kind.value: kind for kind in FlowKind}

# The kinds the request addon shapes, and the kinds answered whatever the key.
SHAPED = frozenset({FlowKind.MESSAGES, FlowKind.COUNT_TOKENS})
PUBLIC = frozenset({FlowKind.STATUS, FlowKind.ROOT})

_KIND_OF_ROUTE = {
    "/v1/messages": FlowKind.MESSAGES,
    SAFEGUARDS_ROUTE: FlowKind.MESSAGES,
    "/v1/messages/count_tokens": FlowKind.COUNT_TOKENS,
    STATUS_PATH: FlowKind.STATUS,
    "/": FlowKind.ROOT,
    "/v1/models": FlowKind.MODELS,
}


def classify(method: str, path: str) -> FlowKind:
    """The kind of a request as it arrived, by the route its path names (endpoint())."""
    kind = _KIND_OF_ROUTE.get(endpoint(path), FlowKind.OTHER)
    if kind in SHAPED and method != "POST":
        return FlowKind.NOT_POSTED
    if kind is FlowKind.MODELS and method != "GET":
        return FlowKind.OTHER  # LiteLLM's to answer, as before
    return kind


# Paths repeat (Claude Code's are a handful): addons ask for the same one on every flow.
@functools.lru_cache(maxsize=256)
def endpoint(path: str) -> str:
    """The route a request path names, as LiteLLM would serve it: no query string,
    percent-decoded (`/v1/%6D%65ssages`), runs of slashes as one, no trailing slash
    (LiteLLM answers `/v1/messages/` with a redirect to its own port)."""
    route = urllib.parse.unquote(path.partition("?")[0])
    return re.sub(r"/{2,}", "/", route).rstrip("/") or "/"


def canonical_path(path: str) -> str:
    """`path` written the canonical way: its route (endpoint()), then its query string as it came."""
    route, mark, query = path.partition("?")
    return endpoint(route) + mark + query


def flow_kind(flow: "http.HTTPFlow") -> FlowKind:
    """What the request is, as noted on arrival; classified now when no kind (or junk) was noted
    (a recording of an earlier version, a hook driven on its own), by its request as it is now."""
    noted = flow.metadata.get(KIND)
    kind = _KINDS.get(noted) if isinstance(noted, str) else None
    return kind if kind is not None else classify(flow.request.method, flow.request.path)
