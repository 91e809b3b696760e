"""launchd and systemd jobs: what they run, and install / uninstall / status against stand-in tools."""

import json
import os
import plistlib
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from addons import MASTER_KEY_VAR
from litellm_service import cli, doctor, envexec, stack
from litellm_service.systemd import Systemd, quote_argument
from tests.procs import free_port, get_json, poll_until, post_json

# Stand-ins for launchctl and systemctl: they record their arguments (one JSON list
# a line) and keep just enough state for print / show to answer like the real ones.
FAKE_LAUNCHCTL = """\
import json, os, plistlib, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_TOOL_LOG"], "a") as log:
    log.write(json.dumps(["launchctl", *args]) + "\\n")
loaded = Path(os.environ["FAKE_TOOL_STATE"])
loaded.mkdir(exist_ok=True)
if args[0] == "bootstrap":
    label = plistlib.loads(Path(args[2]).read_bytes())["Label"]
    if (loaded / label).exists():
        sys.exit("Bootstrap failed: 5: Input/output error")
    (loaded / label).touch()
elif args[0] == "bootout":
    (loaded / args[1].rsplit("/", 1)[1]).unlink()
elif args[0] == "print":
    label = args[1].rsplit("/", 1)[1]
    if not (loaded / label).exists():
        sys.exit(f"Could not find service \\"{label}\\" in domain for port")
    print(f"{args[1]} = {{\\n\\tactive count = 1\\n\\tstate = running\\n\\n\\tpid = 4242\\n"
          f"\\tlast exit code = 0\\n\\tendpoints = {{\\n\\t\\tstate = active\\n\\t}}\\n}}")
"""

FAKE_SYSTEMCTL = """\
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_TOOL_LOG"], "a") as log:
    log.write(json.dumps(["systemctl", *args]) + "\\n")
assert args[0] == "--user", "every call must be a --user call"
enabled = Path(os.environ["FAKE_TOOL_STATE"])
enabled.mkdir(exist_ok=True)
verb, units = args[1], [a for a in args[2:] if a.endswith(".service")]
if verb in ("enable", "restart"):
    for unit in units:
        (enabled / unit).touch()
elif verb == "disable":
    for unit in units:
        (enabled / unit).unlink()
elif verb == "show":
    on = (enabled / units[0]).exists()
    print(f"LoadState={'loaded' if on else 'not-found'}\\nUnitFileState={'enabled' if on else ''}\\n"
          f"ActiveState={'active' if on else 'inactive'}\\nMainPID={4242 if on else 0}\\nExecMainStatus=0")
"""


def stabilizer(*args: str) -> int:
    """The CLI in this process (HOME and PATH as the test set them)."""
    return cli.main(list(args))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A throwaway HOME, nothing of the developer's environment, no launchctl or systemctl on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", MASTER_KEY_VAR):
        monkeypatch.delenv(name, raising=False)
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    return home


def install_fake(home: Path, monkeypatch, tool: str, source: str) -> Path:
    """Put a recording stand-in for `tool` on PATH; returns its log (one JSON argument list a line)."""
    script = Path(os.environ["PATH"]) / tool
    script.write_text(f"#!{sys.executable}\n{source}")
    script.chmod(0o755)
    log = home.parent / f"{tool}.calls"
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    monkeypatch.setenv("FAKE_TOOL_STATE", str(home.parent / f"{tool}.state"))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def printed_files(output: str) -> dict[str, str]:
    """`stabilizer launchd|systemd print`: each file after a `# PATH` line."""
    parts = re.split(r"^# (/\S+)\n", output, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def run_commands(monkeypatch, argv: list[str]) -> tuple[list[str], list[str]]:
    """The LiteLLM and mitmdump command lines `stabilizer run` would spawn with these arguments."""
    spawned = []
    monkeypatch.setattr(cli, "spawn", lambda command, **kwargs: spawned.append(command))
    runner = cli.ForegroundRun(cli.build_parser().parse_args(["run", *argv]))
    runner.start_litellm()
    # As a service starts it: before LiteLLM's port is known (`stabilizer run` waits for it,
    # to give it as the target mitmweb shows; the Upstream addon routes either way).
    runner.start_mitmdump(None)
    return spawned[0], spawned[1]


def launchd_plists(capsys, *argv: str) -> dict[str, dict]:
    assert stabilizer("launchd", "print", *argv) == 0
    return {path: plistlib.loads(text.encode()) for path, text in printed_files(capsys.readouterr().out).items()}


def path_arguments(command: list[str]) -> list[str]:
    """The program and every argument that names a file or folder."""
    paths = [command[0]]
    for flag, value in zip(command, command[1:]):
        if flag in ("--config", "--log-file", "--env-file", "-s"):
            paths.append(value)
        elif flag == "--set" and value.startswith(("stabilizer_litellm_log=", "stabilizer_policy=")):
            paths.append(value.split("=", 1)[1])
        elif flag == "--":
            paths.append(value)
    return paths


OPTION_SETS = [[], ["--port", "4100", "--host", "127.0.0.2", "--log-dir", "/tmp/stabilizer-logs"]]


@pytest.mark.parametrize("options", OPTION_SETS, ids=["defaults", "options"])
def test_launchd_jobs_run_exactly_what_stabilizer_run_runs(home, capsys, monkeypatch, options):
    litellm_run, mitmdump_run = run_commands(monkeypatch, options)
    plists = launchd_plists(capsys, *options)
    by_label = {plist["Label"]: plist for plist in plists.values()}
    assert set(by_label) == {"dev.stabilizer.litellm", "dev.stabilizer.mitmdump"}

    assert by_label["dev.stabilizer.litellm"]["ProgramArguments"] == litellm_run
    mitmdump_job = by_label["dev.stabilizer.mitmdump"]["ProgramArguments"]
    log_wrapper, env_wrapper, command = split_at_separators(mitmdump_job, 2)
    assert command == mitmdump_run
    litellm_log = Path(litellm_run[litellm_run.index("--log-file") + 1])
    assert log_wrapper == [
        sys.executable,
        "-m",
        "litellm_service.logpipe",
        "--output",
        str(litellm_log.with_name("mitmdump.log")),
    ]
    assert env_wrapper == [
        sys.executable,
        "-m",
        "litellm_service.envexec",
        "--env-file",
        str(home / ".config" / "stabilizer" / "env"),
    ]


def split_at_separators(command: list[str], count: int) -> list[list[str]]:
    """The wrappers' own arguments and the command, split at the first `count` "--"."""
    parts = []
    for _ in range(count):
        separator = command.index("--")
        parts.append(command[:separator])
        command = command[separator + 1 :]
    return parts + [command]


def test_plists_have_the_launchagent_keys_and_log_where_the_addon_looks(home, capsys):
    log_dir = stack.default_log_dir()
    plists = launchd_plists(capsys)
    assert sorted(plists) == sorted(
        str(home / "Library" / "LaunchAgents" / f"dev.stabilizer.{name}.plist") for name in ("litellm", "mitmdump")
    )
    for path, plist in plists.items():
        assert Path(path).name == plist["Label"] + ".plist"
        assert re.fullmatch(r"[a-z]+(\.[a-z0-9-]+){2,}", plist["Label"])  # reverse DNS
        assert plist["RunAtLoad"] is True and plist["KeepAlive"] is True
        assert isinstance(plist["ThrottleInterval"], int) and plist["ThrottleInterval"] > 0
        assert Path(plist["StandardOutPath"]).parent == log_dir
        assert plist["StandardErrorPath"] == plist["StandardOutPath"]
    litellm_job = next(p for p in plists.values() if p["Label"].endswith("litellm"))
    mitmdump_job = next(p for p in plists.values() if p["Label"].endswith("mitmdump"))
    followed = next(a for a in mitmdump_job["ProgramArguments"] if a.startswith("stabilizer_litellm_log="))
    written = litellm_job["ProgramArguments"][litellm_job["ProgramArguments"].index("--log-file") + 1]
    assert (
        followed == f"stabilizer_litellm_log={log_dir / stack.LITELLM_LOG_NAME}" == f"stabilizer_litellm_log={written}"
    )


def test_no_key_in_job_files(home, capsys, monkeypatch):
    log = install_fake(home, monkeypatch, "launchctl", FAKE_LAUNCHCTL)
    assert stabilizer("launchd", "install") == 0
    key = stabilizer_key(home)
    assert calls(log)
    for plist in (home / "Library" / "LaunchAgents").iterdir():
        assert key not in plist.read_text()
    assert stabilizer("systemd", "print") == 0
    assert key not in capsys.readouterr().out


def stabilizer_key(home: Path) -> str:
    env_file = home / ".config" / "stabilizer" / "env"
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)[MASTER_KEY_VAR]


def test_launchd_install_status_reinstall_uninstall(home, capsys, monkeypatch):
    log = install_fake(home, monkeypatch, "launchctl", FAKE_LAUNCHCTL)
    agents = home / "Library" / "LaunchAgents"
    domain = f"gui/{os.getuid()}"
    labels = ["dev.stabilizer.litellm", "dev.stabilizer.mitmdump"]

    assert stabilizer("launchd", "install") == 0
    assert sorted(p.name for p in agents.iterdir()) == [f"{label}.plist" for label in labels]
    issued = [c for c in calls(log) if c[1] != "print"]
    assert issued == [["launchctl", "bootstrap", domain, str(agents / f"{label}.plist")] for label in labels]
    env_file = home / ".config" / "stabilizer" / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and stabilizer_key(home)

    capsys.readouterr()
    assert stabilizer("launchd", "status") == 0
    out = capsys.readouterr().out
    assert out.count("loaded, running (pid 4242), last exit status 0") == 2, out

    log.unlink()
    assert stabilizer("launchd", "install") == 0  # again: the loaded jobs are replaced
    issued = [c for c in calls(log) if c[1] != "print"]
    assert issued == [
        call
        for label in labels
        for call in (
            ["launchctl", "bootout", f"{domain}/{label}"],
            ["launchctl", "bootstrap", domain, str(agents / f"{label}.plist")],
        )
    ]

    log.unlink()
    assert stabilizer("launchd", "uninstall") == 0
    assert list(agents.iterdir()) == []
    assert [c for c in calls(log) if c[1] != "print"] == [
        ["launchctl", "bootout", f"{domain}/{label}"] for label in labels
    ]
    capsys.readouterr()
    assert stabilizer("launchd", "status") == 1
    assert capsys.readouterr().out.count("not installed") == 2


def test_every_path_in_the_installed_plists_is_absolute_and_exists(home, monkeypatch):
    install_fake(home, monkeypatch, "launchctl", FAKE_LAUNCHCTL)
    assert stabilizer("launchd", "install") == 0
    outputs = set()
    for plist_file in (home / "Library" / "LaunchAgents").iterdir():
        plist = plistlib.loads(plist_file.read_bytes())
        command = plist["ProgramArguments"]
        outputs |= {plist["StandardOutPath"], plist["StandardErrorPath"]}
        outputs |= {value for flag, value in zip(command, command[1:]) if flag == "--log-file"}
        outputs |= {a.split("=", 1)[1] for a in command if a.startswith("stabilizer_litellm_log=")}
        paths = path_arguments(command) + [plist["WorkingDirectory"], plist["StandardOutPath"]]
        for path in paths:
            assert Path(path).is_absolute(), path
            # A log is created by its writer, in a folder install made.
            assert Path(path).exists() or (path in outputs and Path(path).parent.is_dir()), path


def test_install_refuses_an_env_file_others_can_read(home, capsys, monkeypatch):
    log = install_fake(home, monkeypatch, "launchctl", FAKE_LAUNCHCTL)
    env_file = home / ".config" / "stabilizer" / "env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"{MASTER_KEY_VAR}=sk-readable\n")
    env_file.chmod(0o644)
    assert stabilizer("launchd", "install") == 1
    assert f"chmod 600 {env_file}" in capsys.readouterr().err
    assert not (home / "Library" / "LaunchAgents").exists()
    assert calls(log) == []


def test_install_wants_every_key_in_the_env_file_not_only_in_this_shell(home, tmp_path, capsys, monkeypatch):
    """The jobs see the env file only: what works in a terminal must not fail silently as a service."""
    log = install_fake(home, monkeypatch, "launchctl", FAKE_LAUNCHCTL)
    monkeypatch.setenv(MASTER_KEY_VAR, "sk-only-in-this-shell")
    assert stabilizer("launchd", "install") == 1
    assert f"{MASTER_KEY_VAR} is set in this shell but not in" in capsys.readouterr().err
    monkeypatch.delenv(MASTER_KEY_VAR)

    config = tmp_path / "litellm.yaml"
    config.write_text(
        stack.DEFAULT_LITELLM_CONFIG.read_text().replace(
            "model_list:\n",
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_key: os.environ/X_API_KEY}\n",
        )
    )
    monkeypatch.setenv("X_API_KEY", "sk-only-in-this-shell")
    assert stabilizer("launchd", "install", "--litellm-config", str(config)) == 1
    assert "environment variable X_API_KEY is not set" in capsys.readouterr().err
    assert calls(log) == [] and not (home / "Library" / "LaunchAgents").exists()


def test_without_launchd_install_points_to_systemd_and_print_still_works(home, capsys):
    assert stabilizer("launchd", "install") == 1
    assert "stabilizer systemd install" in capsys.readouterr().err
    assert stabilizer("launchd", "print") == 0
    assert len(printed_files(capsys.readouterr().out)) == 2
    assert stabilizer("systemd", "install") == 1
    assert "stabilizer launchd install" in capsys.readouterr().err


def unit_settings(unit: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_units_run_what_stabilizer_run_runs(home, capsys, monkeypatch):
    litellm_run, mitmdump_run = run_commands(monkeypatch, [])
    assert stabilizer("systemd", "print") == 0
    units = printed_files(capsys.readouterr().out)
    unit_dir = home / ".config" / "systemd" / "user"
    assert sorted(units) == [
        str(unit_dir / "stabilizer-litellm.service"),
        str(unit_dir / "stabilizer-mitmdump.service"),
    ]
    litellm_unit = unit_settings(units[str(unit_dir / "stabilizer-litellm.service")])
    mitmdump_unit = unit_settings(units[str(unit_dir / "stabilizer-mitmdump.service")])
    # These paths hold no % or $, so POSIX word splitting reads them as systemd does.
    assert shlex.split(litellm_unit["ExecStart"][0]) == litellm_run
    assert split_at_separators(shlex.split(mitmdump_unit["ExecStart"][0]), 2)[-1] == mitmdump_run
    for unit in (litellm_unit, mitmdump_unit):
        assert unit["Restart"] == ["always"] and unit["WantedBy"] == ["default.target"]
        assert Path(unit["StandardOutput"][0].removeprefix("append:")).parent == stack.default_log_dir()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(home, tmp_path, capsys):
    assert stabilizer("systemd", "print") == 0
    for path, text in printed_files(capsys.readouterr().out).items():
        (tmp_path / Path(path).name).write_text(text)
    done = subprocess.run(
        ["/usr/bin/env", "systemd-analyze", "verify", *map(str, tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.skipif(shutil.which("plutil", path="/usr/bin") is None, reason="plutil is macOS's")
def test_plutil_accepts_the_plists(home, tmp_path, capsys):
    assert stabilizer("launchd", "print") == 0
    for path, text in printed_files(capsys.readouterr().out).items():
        (tmp_path / Path(path).name).write_text(text)
    done = subprocess.run(
        ["/usr/bin/plutil", "-lint", *map(str, tmp_path.glob("*.plist"))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_systemd_quoting_survives_hostile_paths():
    assert quote_argument('/a b/"c"\\d$HOME%h\n') == '"/a b/\\"c\\"\\\\d$$HOME%%h\\n"'


def test_systemd_install_status_uninstall(home, capsys, monkeypatch):
    log = install_fake(home, monkeypatch, "systemctl", FAKE_SYSTEMCTL)
    unit_dir = home / ".config" / "systemd" / "user"
    units = ["stabilizer-litellm.service", "stabilizer-mitmdump.service"]

    assert stabilizer("systemd", "install") == 0
    assert sorted(p.name for p in unit_dir.iterdir()) == units
    assert [c for c in calls(log) if c[2] != "show"] == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", *units],
        ["systemctl", "--user", "restart", *units],
    ]
    assert (stack.default_log_dir()).is_dir()
    capsys.readouterr()
    assert stabilizer("systemd", "status") == 0
    assert capsys.readouterr().out.count("loaded, running (pid 4242)") == 2
    assert doctor.check_services("systemd").ok

    log.unlink()
    assert stabilizer("systemd", "uninstall") == 0
    assert list(unit_dir.iterdir()) == []
    assert [c for c in calls(log) if c[2] != "show"] == [
        ["systemctl", "--user", "disable", "--now", *units],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert stabilizer("systemd", "status") == 1
    result = doctor.check_services("systemd")
    assert not result.ok and "stabilizer systemd install" in result.fix


# systemctl --user on a machine without a user manager (a container, a login without a session).
NO_USER_BUS_SYSTEMCTL = """\
import sys
sys.exit("Failed to connect to bus: No medium found")
"""


def test_doctor_checks_systemd_jobs_where_installed_or_asked_about(home, monkeypatch):
    """After `make run` on Linux without a user bus, doctor finds nothing wrong with services the
    foreground stack does not use; installed or asked about, the jobs are checked as before."""
    install_fake(home, monkeypatch, "systemctl", NO_USER_BUS_SYSTEMCTL)
    monkeypatch.setattr(doctor.sys, "platform", "linux")

    result = doctor.check_services("auto")
    assert result.ok and result.what == "systemd jobs" and "none installed" in result.detail, result.line()

    asked = doctor.check_services("systemd")
    assert not asked.ok and "Failed to connect to bus" in asked.detail

    unit = Systemd().job_file("litellm")
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    installed = doctor.check_services("auto")
    assert not installed.ok and "Failed to connect to bus" in installed.detail


def env_dump_command() -> list[str]:
    return [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def test_envexec_loads_the_env_file_then_runs_the_command(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(f"{MASTER_KEY_VAR}=sk-from-file\nDEEPSEEK_API_KEY='sk-deep'\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in (MASTER_KEY_VAR, "DEEPSEEK_API_KEY")}
    done = subprocess.run(envexec.wrapped(env_file, env_dump_command()), env=env, capture_output=True, text=True)
    seen = json.loads(done.stdout)
    assert seen[MASTER_KEY_VAR] == "sk-from-file" and seen["DEEPSEEK_API_KEY"] == "sk-deep"


@pytest.mark.parametrize("exported", [None, ""])
def test_envexec_writes_a_master_key_into_the_env_file_once(tmp_path, exported):
    """Without one in the environment (an empty one is none), the key is generated into the env file
    on first use, and the file's key is the one every later start gets."""
    env_file = tmp_path / "stabilizer" / "env"
    env = {k: v for k, v in os.environ.items() if k != MASTER_KEY_VAR}
    if exported is not None:
        env[MASTER_KEY_VAR] = exported
    keys = []
    for _ in range(2):
        done = subprocess.run(envexec.wrapped(env_file, env_dump_command()), env=env, capture_output=True, text=True)
        keys.append(json.loads(done.stdout)[MASTER_KEY_VAR])
    assert keys[0].startswith("sk-stabilizer-") and keys == [keys[0]] * 2
    assert env_file.read_text().count(f"{MASTER_KEY_VAR}=") == 1


def test_envexec_refuses_a_readable_env_file_and_runs_nothing(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(f"{MASTER_KEY_VAR}=sk-from-file\n")
    env_file.chmod(0o640)
    done = subprocess.run(envexec.wrapped(env_file, env_dump_command()), capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert f"chmod 600 {env_file}" in done.stderr


def test_the_mitmdump_job_serves_with_the_key_from_the_env_file(home, capsys, tmp_path):
    """The rendered job's command, run as launchd would run it: the key reaches MasterKeyAuth."""
    port = free_port()
    env_file = tmp_path / "env"
    env_file.write_text(f"{MASTER_KEY_VAR}=sk-from-the-env-file\n")
    env_file.chmod(0o600)
    plists = launchd_plists(capsys, "--port", str(port), "--env-file", str(env_file), "--log-dir", str(tmp_path))
    command = next(p for p in plists.values() if p["Label"].endswith("mitmdump"))["ProgramArguments"]
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}  # what a LaunchAgent gets
    with open(tmp_path / "mitmdump.job.log", "wb") as output:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    try:
        url = f"http://127.0.0.1:{port}"

        def status():
            assert process.poll() is None, (tmp_path / "mitmdump.log").read_text()
            try:
                return get_json(url + "/_stabilizer/status")[1]
            except OSError:
                return None

        assert poll_until(status, 60, "mitmdump's status endpoint")["litellm_log"] == str(tmp_path / "litellm.log")
        hi = {"model": "demo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        assert post_json(url + "/v1/messages", hi, {"x-api-key": "sk-wrong"})[0] == 401
        # The right key passes the check and reaches the routing, which has no LiteLLM yet.
        assert post_json(url + "/v1/messages", hi, {"x-api-key": "sk-from-the-env-file"})[0] == 503
        # mitmdump's own lines, through the log wrapper into the log under --log-dir; nothing is left
        # to the service manager's output.
        poll_until(
            lambda: b"<< 503 Service Unavailable" in (tmp_path / "mitmdump.log").read_bytes(), 10, "the flow line"
        )
    finally:
        process.terminate()
        process.wait(10)
    # The wrapper passed the stop on: mitmdump is gone and the port free again.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server would: past TIME_WAIT
        again.bind(("127.0.0.1", port))
    assert (tmp_path / "mitmdump.job.log").read_bytes() == b""


def test_systemd_in_front_of_a_litellm_elsewhere_runs_mitmdump_alone(home, capsys, monkeypatch):
    log = install_fake(home, monkeypatch, "systemctl", FAKE_SYSTEMCTL)
    unit_dir = home / ".config" / "systemd" / "user"
    assert stabilizer("systemd", "install") == 0  # first the whole local stack
    assert stabilizer("systemd", "install", "--upstream", "https://llm.example.com") == 0
    assert sorted(p.name for p in unit_dir.iterdir()) == ["stabilizer-mitmdump.service"]
    exec_start = (unit_dir / "stabilizer-mitmdump.service").read_text()
    assert "stabilizer_upstream=https://llm.example.com" in exec_start and "stabilizer_check_key=false" in exec_start
    # The local LiteLLM's unit was stopped before it was removed.
    assert ["systemctl", "--user", "disable", "--now", "stabilizer-litellm.service"] in calls(log)
    capsys.readouterr()
    assert stabilizer("systemd", "status") == 0
    assert capsys.readouterr().out.count("loaded, running (pid 4242)") == 1
    assert doctor.check_services("systemd").ok
