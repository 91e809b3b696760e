"""addons/flow/mitmproxy_internals.py in a real mitmdump: another mitmproxy stops it at start."""

import subprocess
import sys
from pathlib import Path

from tests.addons.test_mitmproxy_internals import PROJECT_ROOT
from tests.procs import free_port


def test_mitmdump_with_another_mitmproxy_does_not_start(tmp_path):
    script = tmp_path / "other_mitmproxy.py"
    script.write_text(
        "import mitmproxy.version\nmitmproxy.version.VERSION = '13.0.0'\nfrom addons.stabilizer_addons import addons\n"
    )
    mitmdump = Path(sys.executable).parent / "mitmdump"
    finished = subprocess.run(
        [str(mitmdump), "-s", str(script), "--listen-host", "127.0.0.1", "--listen-port", str(free_port())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    output = (finished.stdout + finished.stderr).decode()
    assert finished.returncode != 0, output
    assert "this is mitmproxy 13.0.0" in output and "pip install -c constraints.txt" in output, output
