"""The two processes of the stack and the exact command lines that start them.

`stabilizer run`, the launchd jobs and the systemd units all build their
commands here, so the three cannot drift apart.
"""

import errno
import json
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from addons import http_url, upstream_target
from addons.errors.config import ConfigError
from addons.flow.kind import STATUS_PATH

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADDONS_ENTRY = PROJECT_ROOT / "addons" / "stabilizer_addons.py"
DEFAULT_LITELLM_CONFIG = PROJECT_ROOT / "config" / "litellm.yaml"
DEFAULT_POLICY = PROJECT_ROOT / "config" / "stabilizer.yaml"
LITELLM_LOG_NAME = "litellm.log"
# mitmdump needs a reverse target to start; the Upstream addon retargets every
# request to the port it learned, so this address (the discard port) is never used.
# `stabilizer run` gives the LiteLLM it started instead: mitmweb shows the target.
PLACEHOLDER_TARGET = "http://127.0.0.1:9"
# The stack's own endpoint (`stabilizer run` and `doctor` poll it) is no traffic: left out
# of mitmdump's flow lines and mitmweb's flow list (FlowRecorder leaves it out of --record).
NOT_OWN_TRAFFIC = r'!(~u "/_stabilizer/status(?![^?])")'  # the path, alone or with a query
DEFAULT_WEB_PORT = 8081
# mitmweb's default columns plus the comment, where FlowMarker writes what the addons changed.
WEB_COLUMNS = ("tls", "icon", "path", "method", "status", "size", "time", "comment")


def default_log_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "stabilizer"
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "stabilizer"


def client_url(host: str, port: int) -> str:
    """Where a client on this machine reaches a stack listening on host:port."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return http_url(host, port)


def venv_tool(name: str) -> str:
    """A console script installed beside this interpreter (mitmdump, mitmweb)."""
    return str(Path(sys.executable).parent / name)


def litellm_command(*, config: Path, log_file: Path, env_file: Path, front_door: str | None = None) -> list[str]:
    """LiteLLM as litellm_service.server runs it; with `front_door` (the stack's URL) set up to
    answer auto mode, its classifier call sent through the stack (addons/config/safeguards.py)."""
    return [
        sys.executable,
        "-m",
        "litellm_service.server",
        "--config",
        str(config.resolve()),
        "--log-file",
        str(log_file.resolve()),
        "--env-file",
        str(env_file),
        *(["--front-door", front_door] if front_door else []),
    ]


def mitmdump_command(
    *,
    host: str,
    port: int,
    litellm_log: Path,
    policy: Path | None,
    litellm_config: Path | None = None,
    tool: str = "mitmdump",
    record: Path | None = None,
    web_port: int = DEFAULT_WEB_PORT,
    web_password: str = "",
    max_flows: int | None = None,
    upstream: str | None = None,
    upstream_ca: Path | None = None,
    target: str | None = None,
    classifier: str = "",
) -> list[str]:
    """mitmdump (or, with tool="mitmweb", mitmweb) with the addons.

    `record`: write the flows, redacted, to this file (addons/recorder.py).
    The web_* and max_flows settings apply to mitmweb only; `web_password` is
    best an argon2 hash, which mitmweb accepts and which tells nothing to
    whoever lists the processes. `upstream`: a LiteLLM that runs elsewhere (no log is
    followed, keys are left to it), `upstream_ca` the CA file its certificate is
    checked against. `target`: the LiteLLM a log names, when it is known at start.
    `classifier`: auto mode's classifier (addons/safeguards.py), for a LiteLLM started with
    litellm_command's `front_door`; empty: `safeguards` is stripped.
    """
    command = [
        venv_tool(tool),
        "--mode",
        f"reverse:{upstream or target or PLACEHOLDER_TARGET}",
        "--listen-host",
        host,
        "--listen-port",
        str(port),
        # eager would connect to the placeholder target before any hook runs.
        "--set",
        "connection_strategy=lazy",
        # Anthropic's own request limit; larger bodies get a 413 request_too_large
        # before mitmdump buffers them (anything on this machine can reach the port).
        "--set",
        "body_size_limit=32m",
        "-s",
        str(ADDONS_ENTRY),
        "--set",
        f"stabilizer_litellm_log={litellm_log.resolve()}",
        "--set",
        f"stabilizer_policy={policy.resolve() if policy else ''}",
        "--set",
        f"stabilizer_litellm_config={litellm_config.resolve() if litellm_config else ''}",
    ]
    if upstream:
        command += ["--set", f"stabilizer_upstream={upstream}", "--set", "stabilizer_check_key=false"]
        if upstream_ca is not None:
            command += ["--set", f"ssl_verify_upstream_trusted_ca={upstream_ca.resolve()}"]
    if classifier:
        command += ["--set", f"stabilizer_safeguards_classifier={classifier}"]
    if record is not None:
        command += ["--set", f"stabilizer_record={record.resolve()}"]
    command += ["--set", f"{'view' if tool == 'mitmweb' else 'dumper'}_filter={NOT_OWN_TRAFFIC}"]
    if tool == "mitmweb":
        command += [
            # The UI can replay and edit requests: it never listens beyond this machine.
            "--set",
            "web_host=127.0.0.1",
            "--set",
            f"web_port={web_port}",
            "--set",
            "web_open_browser=false",
            *(arg for column in WEB_COLUMNS for arg in ("--set", f"web_columns={column}")),
        ]
        if web_password:
            command += ["--set", f"web_password={web_password}"]
        if max_flows is not None:
            command += ["--set", f"stabilizer_max_flows={max_flows}"]
    return command


class PortUnavailable(ConfigError):
    pass


class UpstreamUnavailable(ConfigError):
    pass


def check_upstream(url: str, ca: Path | None = None, timeout: float = 5.0) -> None:
    """Raise UpstreamUnavailable, saying why, unless a LiteLLM answers at `url` (any HTTP status:
    its liveness route needs no key)."""
    try:
        upstream_target(url)
    except ValueError as e:
        raise UpstreamUnavailable(f"--upstream {e}") from None
    try:
        context = ssl.create_default_context(cafile=str(ca)) if ca else None
    except (OSError, ssl.SSLError) as e:
        raise UpstreamUnavailable(
            f"--upstream-ca {ca}: cannot read it as CA certificates ({e.strerror or e}); "
            "give the PEM file of the CA that signed LiteLLM's certificate"
        ) from None
    try:
        urllib.request.urlopen(url.rstrip("/") + "/health/liveliness", timeout=timeout, context=context).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ssl.SSLError) as e:
        reason = getattr(e, "reason", e)
        raise UpstreamUnavailable(
            f"nothing answers at {url} ({reason}); start LiteLLM there, or check the URL"
            + ("" if ca else " (for a private CA: --upstream-ca FILE)")
        ) from None


def check_port_free(host: str, port: int) -> None:
    """Raise PortUnavailable, saying why, unless host:port can be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortUnavailable(
                    f"port {port} on {host} is already in use (another stabilizer or LiteLLM?); "
                    f"stop it, or pass --port to use another port"
                ) from None
            raise PortUnavailable(f"cannot listen on {host}:{port}: {e.strerror}") from None


def fetch_status(host: str, port: int) -> dict | None:
    """The Upstream addon's status answer at host:port, or None when nothing answers it."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{STATUS_PATH}", timeout=1) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None
