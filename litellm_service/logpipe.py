"""Run a command with its output in a log file that is rotated by size.

    python -m litellm_service.logpipe --output ~/.local/state/stabilizer/mitmdump.log -- mitmdump ...

launchd rotates nothing, and systemd's `append:` output neither: mitmdump prints
a line per flow, so under a service its log would grow for as long as the
machine runs. This wrapper starts the command with its stdout and stderr on a
pipe and copies what arrives into the log; past MAX_BYTES the log becomes
`<log>.1` (`.1` becomes `.2`, and so on, BACKUPS kept) and a new one is begun,
at a line boundary. The wrapper forwards the signals a service manager stops
with and exits with the command's status, so the job behaves as the command.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

MAX_BYTES = 16 * 1024 * 1024
BACKUPS = 3
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def wrapped(output: Path, command: list[str]) -> list[str]:
    """`command`, started through this wrapper."""
    return [sys.executable, "-m", "litellm_service.logpipe", "--output", str(output), "--", *command]


class RotatingLog:
    """Appends bytes to `path`; rotates before a write would take it past `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, data: bytes) -> None:
        while data:
            size = os.fstat(self._fd).st_size
            room = self.max_bytes - size
            if len(data) <= room:
                os.write(self._fd, data)
                return
            # The whole lines that fit; a line longer than the limit goes alone into a file of its own.
            cut = data.rfind(b"\n", 0, room) + 1 or (0 if size else data.find(b"\n") + 1 or len(data))
            os.write(self._fd, data[:cut])
            self.rotate()
            data = data[cut:]

    def rotate(self) -> None:
        os.close(self._fd)
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open()

    def close(self) -> None:
        os.close(self._fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_service.logpipe", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="the log file (mode 0600)")
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    log = RotatingLog(args.output)
    try:
        child = subprocess.Popen(
            args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except OSError as e:
        log.write(f"logpipe: cannot start {args.command[0]}: {e.strerror}\n".encode())
        return 127
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda signum, frame: child.send_signal(signum))
    assert child.stdout is not None  # stdout=PIPE
    while chunk := os.read(child.stdout.fileno(), 65536):
        log.write(chunk)
    log.close()
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
