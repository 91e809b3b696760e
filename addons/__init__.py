"""stabilizer's mitmproxy addons and the pure transforms they call."""

import urllib.parse

__version__ = "0.1.0"

# Where the master key is, for LiteLLM (its config's `os.environ/LITELLM_MASTER_KEY`), the
# front door and the env file.
MASTER_KEY_VAR = "LITELLM_MASTER_KEY"
# The LiteLLM setting that sends /v1/messages of an openai/ model to Chat Completions instead of
# the Responses API, which the open-weight providers lack: set on the LiteLLM the stack starts
# (addons/config/litellm_config.py), named in the error for its absence (addons/errors/upstream.py).
CHAT_COMPLETIONS_SETTING = "use_chat_completions_url_for_anthropic_messages"
# Marks `stabilizer doctor`'s probes: they ask what the backend takes, and a limit learned from
# one (the refusal answered again within it, addons/limit_learner.py) would hide the problem
# doctor is there to report.
PROBE_HEADER = "x-stabilizer-probe"


def http_url(host: str, port: int) -> str:
    """http://host:port, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def upstream_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an --upstream URL; ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: expected http://host[:port][/prefix] or https://...")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")
