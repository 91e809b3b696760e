"""The log wrapper of the mitmdump service: rotation by size at line boundaries, signals passed on."""

import signal
import subprocess
import sys

from litellm_service.logpipe import RotatingLog, wrapped
from tests.procs import poll_until


def test_rotates_at_a_line_boundary_and_keeps_the_backups(tmp_path):
    path = tmp_path / "mitmdump.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    lines = [f"line {n:03d} {'x' * 20}\n".encode() for n in range(30)]  # 30 bytes each
    for start in range(0, 30, 4):  # writes of several lines, as a pipe delivers them
        log.write(b"".join(lines[start : start + 4]))
    log.close()
    files = [path.with_name("mitmdump.log.2"), path.with_name("mitmdump.log.1"), path]
    assert not path.with_name("mitmdump.log.3").exists()
    contents = [f.read_bytes() for f in files]
    assert all(len(c) <= 100 and c.endswith(b"\n") for c in contents)
    # The newest lines, in order, none cut: what was dropped is the oldest, whole.
    kept = b"".join(contents)
    assert kept == b"".join(lines)[-len(kept) :] and kept.startswith(b"line ")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_line_longer_than_the_limit_goes_whole_into_a_file_of_its_own(tmp_path):
    path = tmp_path / "mitmdump.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    log.write(b"first\n")
    log.write(b"y" * 150 + b"\nlast\n")
    log.close()
    assert [
        path.with_name("mitmdump.log.2").read_bytes(),
        path.with_name("mitmdump.log.1").read_bytes(),
        path.read_bytes(),
    ] == [b"first\n", b"y" * 150 + b"\n", b"last\n"]


def test_the_command_s_output_and_status_pass_through_and_a_stop_reaches_it(tmp_path):
    path = tmp_path / "out.log"
    child = (
        "import signal, sys, time\n"
        "print('started', flush=True)\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('stopping', flush=True), sys.exit(3)))\n"
        "signal.pause()\n"
    )
    process = subprocess.Popen(wrapped(path, [sys.executable, "-c", child]))
    try:
        poll_until(lambda: path.exists() and b"started" in path.read_bytes(), 10, "the child's first line")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 3
    finally:
        process.kill()
    assert path.read_bytes() == b"started\nstopping\n"


def test_a_command_that_cannot_start_is_said_in_the_log(tmp_path):
    path = tmp_path / "out.log"
    assert subprocess.run(wrapped(path, [str(tmp_path / "absent")])).returncode == 127
    assert path.read_text().startswith(f"logpipe: cannot start {tmp_path / 'absent'}")
