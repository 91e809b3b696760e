"""Start a command with the env file's keys in its environment.

    python -m litellm_service.envexec --env-file ~/.config/stabilizer/env -- mitmdump ...

launchd has no EnvironmentFile=, and keys must never be written into plists or
unit files (both are world-readable). The mitmdump job therefore starts through
this wrapper, which loads the user-only env file (refusing one that others can
read), makes sure the master key is set (mitmdump's MasterKeyAuth reads it from
its environment), and then replaces itself with the real command. The systemd
unit uses the same wrapper rather than EnvironmentFile=, so both platforms start
mitmdump identically and the file is parsed and mode-checked by one reader.
"""

import argparse
import os
import sys
from pathlib import Path

from litellm_service.envfile import EnvFileError, load_into_environ


def wrapped(env_file: Path, command: list[str]) -> list[str]:
    """`command`, started through this wrapper."""
    return [sys.executable, "-m", "litellm_service.envexec", "--env-file", str(env_file), "--", *command]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_service.envexec", description=__doc__.split("\n")[0])
    parser.add_argument("--env-file", type=Path, required=True, help="NAME=value lines, mode 0600")
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    args = parser.parse_args(argv)
    try:
        load_into_environ(args.env_file)
    except EnvFileError as e:
        print(f"envexec: {e}", file=sys.stderr)
        return 2
    try:
        os.execv(args.command[0], args.command)
    except OSError as e:
        print(f"envexec: cannot start {args.command[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
