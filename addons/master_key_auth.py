"""Refuse calls that do not carry the master key, before any addon answers for LiteLLM.

Other addons answer some requests themselves (count_tokens estimates, "prompt is
too long"), so the key is checked here, first, not only by LiteLLM. Every path
is checked but the status endpoint and the root (Claude Code fetches it once at
start): LiteLLM's own routes outside /v1/ answer a missing key with a 500 and a
wrong one with "No connected db.", not with a refusal.

The key is the one LiteLLM checks (`litellm_master_key`): the LiteLLM config's
general_settings.master_key (option `stabilizer_litellm_config`), literal or
`os.environ/NAME`, else the environment's LITELLM_MASTER_KEY. The key itself is
never an option: options show up in process listings and mitmweb.
"""

import hmac
import logging
import os

from mitmproxy import ctx, exceptions, http

from addons import MASTER_KEY_VAR
from addons.config.litellm_config import LiteLLMConfigError, litellm_master_key, read_litellm_config
from addons.flow.answers import answer, error_response
from addons.flow.kind import PUBLIC, flow_kind

logger = logging.getLogger(__name__)


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
        loader.add_option(
            "stabilizer_check_key",
            bool,
            True,
            "Check the master key at the front door. Off in front of a team's LiteLLM (stabilizer run "
            "--upstream): each developer's virtual key goes on for LiteLLM to check.",
        )
        self._use(litellm_master_key(None, os.environ))

    def configure(self, updated):
        if "stabilizer_check_key" in updated and not ctx.options.stabilizer_check_key:
            self.master_key = None
            logger.info("front door: keys are left to LiteLLM to check")
            return
        # Declared by RequestShaper, which reads the same config's routes.
        if (
            "stabilizer_litellm_config" in updated
            and ctx.options.stabilizer_check_key
            and (path := ctx.options.stabilizer_litellm_config)
        ):
            try:
                self._use(litellm_master_key(read_litellm_config(path), os.environ))
            except LiteLLMConfigError as e:
                raise exceptions.OptionsError(str(e)) from None

    def _use(self, key: str | None) -> None:
        self.master_key = key.encode() if key else None
        if not self.master_key:
            logger.warning("no master key (%s, or the LiteLLM config's): LiteLLM is left to check keys", MASTER_KEY_VAR)

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.master_key or flow.response or flow_kind(flow) in PUBLIC:
            return
        key = presented_key(flow.request)
        if key is None:
            answer(
                flow,
                error_response(
                    "authentication_error", "missing API key: send the master key as x-api-key or Authorization: Bearer"
                ),
            )
        elif not hmac.compare_digest(key.encode(), self.master_key):
            answer(flow, error_response("authentication_error", "invalid API key"))
