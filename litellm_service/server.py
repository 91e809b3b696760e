"""The LiteLLM proxy, started programmatically: loopback, an OS-chosen port, offline.

    python -m litellm_service.server --config config/litellm.yaml --log-file litellm.log

Everything LiteLLM and uvicorn print goes to the log file, including uvicorn's
`Uvicorn running on http://127.0.0.1:PORT` line, which is the only thing the
upstream addon needs to find this process. Port 0 lets the OS choose: LiteLLM's
own CLI silently drifts to a random port when 4000 is taken, which is exactly the
instability the mitmdump front end exists to hide.

With `--front-door URL` (the stack's address; `stabilizer run` and the services
give it) LiteLLM runs with the config set up for Claude Code's auto mode
(addons/config/safeguards.py), written beside the log as `<log>.config.yaml`.
"""

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from addons.config.litellm_config import added_settings, added_settings_note, load_litellm_config
from addons.config.safeguards import with_safeguards
from addons.errors.config import ConfigError
from litellm_service.envfile import default_env_file, load_into_environ


def _redirect_output(log_file: Path) -> None:
    """Point fds 1 and 2 at the log (append), so nothing LiteLLM prints is lost."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        assert isinstance(stream, io.TextIOWrapper)  # the interpreter's own, not replaced here
        stream.reconfigure(line_buffering=True)


def prepare_environment(
    config: Path, env_file: Path, front_door: str | None = None, derived: Path | None = None
) -> dict[str, Any]:
    """Load keys, check the config against them, and make LiteLLM offline-safe.
    Returns the litellm_settings Claude Code's traffic needs that the config leaves out.

    With `front_door` (the stack's URL) LiteLLM runs with the config set up for auto mode
    (addons/config/safeguards.py), written to `derived` (mode 0600: a config may hold keys)."""
    load_into_environ(env_file)
    checked = load_litellm_config(config)
    added = added_settings(checked)
    if front_door and derived:
        derived.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(derived, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            yaml.safe_dump(with_safeguards(checked, front_door), file, sort_keys=False)
        config = derived
    os.environ["CONFIG_FILE_PATH"] = str(config)
    # No cost-map download at start-up, no telemetry.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_service.server", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="LiteLLM proxy config (YAML)")
    parser.add_argument("--log-file", type=Path, required=True, help="where all output goes (appended)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: the OS chooses (default)")
    parser.add_argument("--env-file", type=Path, default=default_env_file(), help="NAME=value keys, mode 0600")
    parser.add_argument(
        "--front-door",
        help="the stack's URL (mitmdump's): auto mode's classifier call goes there (addons/config/safeguards.py)",
    )
    args = parser.parse_args(argv)
    derived = args.log_file.resolve().with_suffix(".config.yaml")
    try:
        added = prepare_environment(args.config.resolve(), args.env_file, args.front_door, derived)
    except ConfigError as e:
        print(f"litellm_service: {e}", file=sys.stderr)
        return 2
    _redirect_output(args.log_file)

    import litellm
    import uvicorn

    litellm.disable_hf_tokenizer_download = True
    if added:
        # LiteLLM applies a config's litellm_settings as these same module attributes, and
        # only those the config has: what is set here stays.
        for key, value in added.items():
            setattr(litellm, key, value)
        print(f"litellm_service: {added_settings_note(args.config, added)}")
    # Access lines would grow the log the upstream addon follows by one line per request.
    # The rest is uvicorn's default on purpose (why, as measured: docs/benchmarks.md, "Where
    # LiteLLM's time goes"): uvloop and h11 (httptools is not installed), one worker (LiteLLM's
    # "Server Tuning" page, docs.litellm.ai, read 2026-11-26, advises one per machine), and the
    # 5 s keep-alive, past which mitmdump reconnects without an error.
    uvicorn.run("litellm.proxy.proxy_server:app", host=args.host, port=args.port, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
