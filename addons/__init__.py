"""stabilizer's mitmproxy addons and the pure transforms they call."""

__version__ = "0.1.0"

# Answered by the Upstream addon itself; read by `stabilizer run` and `stabilizer doctor`.
STATUS_PATH = "/_stabilizer/status"
# The endpoints the addons reshape; Claude Code adds `?beta=true`.
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


def endpoint(path: str) -> str:
    """A request path without its query string."""
    return path.partition("?")[0]
