"""LiteLLM's log followed for the port it listens on (addons/wire/logfollow.py): a log absent, then
created; a partial line; truncated, rotated and replaced logs.
"""

import os

from addons.wire.logfollow import LogFollower, listening_address

LINE = b"INFO:     Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)\n"


def test_missing_file_then_created(tmp_path):
    log = tmp_path / "litellm.log"
    follower = LogFollower(str(log))
    assert follower.read_lines() == []
    log.write_bytes(b"first\nsecond\n")
    assert follower.read_lines() == [b"first", b"second"]
    assert follower.read_lines() == []


def test_partial_line_waits_for_its_end(tmp_path):
    log = tmp_path / "litellm.log"
    log.write_bytes(b"INFO:     Uvicorn running on http://127.0.0.1:40")
    follower = LogFollower(str(log))
    assert follower.read_lines() == []
    with open(log, "ab") as f:
        f.write(b"01 (Press CTRL+C to quit)\n")
    assert [listening_address(line) for line in follower.read_lines()] == [("127.0.0.1", 4001)]


def test_truncation_restarts_from_the_top(tmp_path):
    log = tmp_path / "litellm.log"
    log.write_bytes(b"x" * 1000 + b"\n")
    follower = LogFollower(str(log))
    follower.read_lines()
    log.write_bytes(LINE % 5000)  # same inode, shorter
    assert follower.read_lines() == [(LINE % 5000).rstrip(b"\n")]


def test_rotation_keeps_the_old_files_last_lines(tmp_path):
    log = tmp_path / "litellm.log"
    log.write_bytes(b"old\n")
    follower = LogFollower(str(log))
    assert follower.read_lines() == [b"old"]
    with open(log, "ab") as f:
        f.write(b"written before rotation\n")
    os.rename(log, tmp_path / "litellm.log.1")
    log.write_bytes(b"new file\n")
    assert follower.read_lines() == [b"written before rotation", b"new file"]


def test_replacement_by_rename(tmp_path):
    log = tmp_path / "litellm.log"
    log.write_bytes(LINE % 4001)
    follower = LogFollower(str(log))
    follower.read_lines()
    replacement = tmp_path / "new.log"
    replacement.write_bytes(LINE % 4002)
    os.replace(replacement, log)
    assert [listening_address(line) for line in follower.read_lines()] == [("127.0.0.1", 4002)]


def test_listening_address_forms():
    assert listening_address(LINE % 38341) == ("127.0.0.1", 38341)
    assert listening_address(b"Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)") == ("127.0.0.1", 4000)
    assert listening_address(b"Uvicorn running on http://[::1]:4000 (Press CTRL+C to quit)") == ("::1", 4000)
    assert listening_address(b"INFO: Application startup complete.") is None
    assert listening_address(b"\xff\xfe not utf-8 at all") is None
