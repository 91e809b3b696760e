"""Refuse calls that do not carry the master key, before any addon answers for LiteLLM.

Other addons answer some requests themselves (count_tokens estimates, "prompt is
too long"), so the key is checked here, first, not only by LiteLLM. Every path
is checked but the status endpoint and the root (Claude Code fetches it once at
start): LiteLLM's own routes outside /v1/ answer a missing key with a 500 and a
wrong one with "No connected db.", not with a refusal. The key comes from the
environment (LITELLM_MASTER_KEY, as LiteLLM reads it), never from an option:
options show up in process listings and mitmweb.
"""

import hmac
import logging
import os

from mitmproxy import http

from addons import STATUS_PATH, endpoint
from addons.errors import error_body

logger = logging.getLogger(__name__)

MASTER_KEY_VAR = "LITELLM_MASTER_KEY"
PUBLIC_PATHS = frozenset({"/", STATUS_PATH})


def presented_key(request: http.Request) -> str | None:
    """The key from `x-api-key` (SDKs) or `Authorization: Bearer` (ANTHROPIC_AUTH_TOKEN)."""
    if key := request.headers.get("x-api-key"):
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class MasterKeyAuth:
    def __init__(self):
        self.master_key: bytes | None = None

    def load(self, loader):
        key = os.environ.get(MASTER_KEY_VAR)
        self.master_key = key.encode() if key else None
        if not self.master_key:
            logger.warning("%s is not set: the master key is left to LiteLLM to check", MASTER_KEY_VAR)

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.master_key or flow.response or endpoint(flow.request.path) in PUBLIC_PATHS:
            return
        key = presented_key(flow.request)
        if key is None:
            flow.response = http.Response.make(
                401,
                error_body("authentication_error", "missing API key: send the master key as x-api-key or Authorization: Bearer"),
                {"content-type": "application/json"},
            )
        elif not hmac.compare_digest(key.encode(), self.master_key):
            flow.response = http.Response.make(
                401, error_body("authentication_error", "invalid API key"), {"content-type": "application/json"}
            )
