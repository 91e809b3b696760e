"""The pinned Claude Code CLI is installed and runs."""

import subprocess

from tests.claude import claude_binary, version_under_test


def test_cli_reports_the_version_under_test():
    proc = subprocess.run(
        [str(claude_binary()), "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    # prints e.g. "2.1.197 (Claude Code)"
    assert proc.stdout.split()[0] == version_under_test(), proc.stdout
