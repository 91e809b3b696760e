"""stabilizer's mitmproxy addons and the pure transforms they call."""

import re
import urllib.parse

__version__ = "0.1.0"

# Where the master key is, for LiteLLM (its config's `os.environ/LITELLM_MASTER_KEY`), the
# front door and the env file.
MASTER_KEY_VAR = "LITELLM_MASTER_KEY"
# Answered by the Upstream addon itself; read by `stabilizer run` and `stabilizer doctor`.
STATUS_PATH = "/_stabilizer/status"
# The endpoints the addons reshape; Claude Code adds `?beta=true`.
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
SHAPED_PATHS = frozenset({MESSAGES_PATH, COUNT_TOKENS_PATH})
# Answered by the Upstream addon itself, whatever the key: `/` (Claude Code sends `HEAD /`
# first; LiteLLM would serve its landing page) and the status.
PUBLIC_PATHS = frozenset({"/", STATUS_PATH})


def http_url(host: str, port: int) -> str:
    """http://host:port, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def endpoint(path: str) -> str:
    """The route a request path names, as LiteLLM would serve it: no query string,
    percent-decoded (`/v1/%6D%65ssages`), runs of slashes as one, no trailing slash
    (LiteLLM answers `/v1/messages/` with a redirect to its own port)."""
    route = urllib.parse.unquote(path.partition("?")[0])
    return re.sub(r"/{2,}", "/", route).rstrip("/") or "/"


def canonical_path(path: str) -> str | None:
    """`path` written the canonical way when it names a route the addons reshape in another
    way (so LiteLLM gets exactly what was shaped); None when it is canonical or another route."""
    route, mark, query = path.partition("?")
    canonical = endpoint(route)
    if canonical in SHAPED_PATHS and route != canonical:
        return canonical + mark + query
    return None


def upstream_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an --upstream URL; ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: expected http://host[:port][/prefix] or https://...")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")
