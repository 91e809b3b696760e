"""Follow a log file the way `tail -F` does, and find LiteLLM's listening address in it.

The file may not exist yet, may be truncated in place, or rotated and replaced by
a new file; none of that may lose a line. Pure file I/O, no proxy involved.
"""

import os
import re
from typing import BinaryIO

# uvicorn prints this on stderr once the app has started; LiteLLM's banner never shows the port.
RUNNING_LINE = re.compile(rb"Uvicorn running on https?://(\[[^\]]+\]|[^\s:/]+):(\d+)")


class LogFollower:
    def __init__(self, path: str):
        self.path = path
        self._file: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""

    def close(self) -> None:
        if self._file:
            self._file.close()
        self._file = None
        self._identity = None
        self._partial = b""

    def read_lines(self) -> list[bytes]:
        """Complete lines appended since the last call (a trailing partial line waits)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        lines: list[bytes] = []
        if self._file is not None and (st.st_dev, st.st_ino) != self._identity:
            # Replaced or rotated: finish the old file first, then start the new one at 0.
            lines += self._read_available()
            if self._partial:
                lines.append(self._partial)
            self.close()
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return lines
            self._identity = (st.st_dev, st.st_ino)
        elif st.st_size < self._file.tell():
            # Truncated in place.
            self._file.seek(0)
            self._partial = b""
        return lines + self._read_available()

    def _read_available(self) -> list[bytes]:
        assert self._file is not None  # read_lines calls this only with a file open
        data = self._file.read()
        if not data:
            return []
        *complete, self._partial = (self._partial + data).split(b"\n")
        return complete


def listening_address(line: bytes) -> tuple[str, int] | None:
    """(host, port) from uvicorn's "running on" line; a wildcard bind is reached via loopback."""
    match = RUNNING_LINE.search(line)
    if not match:
        return None
    host = match.group(1).decode().strip("[]")
    if host in ("0.0.0.0", "::", "localhost"):
        host = "127.0.0.1" if host != "::" else "::1"
    return host, int(match.group(2))
