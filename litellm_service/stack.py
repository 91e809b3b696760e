"""The two processes of the stack and the exact command lines that start them.

`stabilizer run`, the launchd jobs and the systemd units all build their
commands here, so the three cannot drift apart.
"""

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADDONS_ENTRY = PROJECT_ROOT / "addons" / "stabilizer_addons.py"
DEFAULT_LITELLM_CONFIG = PROJECT_ROOT / "config" / "litellm.yaml"
DEFAULT_POLICY = PROJECT_ROOT / "config" / "stabilizer.yaml"
LITELLM_LOG_NAME = "litellm.log"
# mitmdump needs a reverse target to start; the Upstream addon retargets every
# request to the port it learned, so this address (the discard port) is never used.
PLACEHOLDER_TARGET = "http://127.0.0.1:9"


def default_log_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "stabilizer"
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "stabilizer"


def venv_tool(name: str) -> str:
    """A console script installed beside this interpreter (mitmdump, mitmweb)."""
    return str(Path(sys.executable).parent / name)


def litellm_command(*, config: Path, log_file: Path, env_file: Path) -> list[str]:
    return [
        sys.executable, "-m", "litellm_service",
        "--config", str(config.resolve()),
        "--log-file", str(log_file.resolve()),
        "--env-file", str(env_file),
    ]


def mitmdump_command(
    *, host: str, port: int, litellm_log: Path, policy: Path | None, tool: str = "mitmdump"
) -> list[str]:
    return [
        venv_tool(tool),
        "--mode", f"reverse:{PLACEHOLDER_TARGET}",
        "--listen-host", host,
        "--listen-port", str(port),
        # eager would connect to the placeholder target before any hook runs.
        "--set", "connection_strategy=lazy",
        "-s", str(ADDONS_ENTRY),
        "--set", f"stabilizer_litellm_log={litellm_log.resolve()}",
        "--set", f"stabilizer_policy={policy.resolve() if policy else ''}",
    ]
