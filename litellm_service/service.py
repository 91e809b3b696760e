"""The stack as two background services, under launchd (macOS) or systemd --user (Linux).

Both jobs run the commands `stabilizer run` runs, built by litellm_service/stack.py:
the LiteLLM server (which reads the env file itself) and mitmdump with the addons
(started through litellm_service.envexec, which loads the env file for it, under
litellm_service.logpipe, which rotates mitmdump.log: it grows by a line a flow). The
job files are rendered from the templates under launchd/ (the systemd units in launchd/systemd/); the platform modules
(launchd.py, systemd.py) know where the files go and how to load them.
"""

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from addons import MASTER_KEY_VAR
from addons.config.litellm_config import load_litellm_config
from addons.config.policy import load_policy
from addons.errors.config import ConfigError
from litellm_service import envexec, logpipe, stack
from litellm_service.envfile import ensure_master_key, read_env_file

TEMPLATE_DIR = stack.PROJECT_ROOT / "launchd"
JOB_NAMES = ("litellm", "mitmdump")  # also the names of their templates
MITMDUMP_LOG_NAME = "mitmdump.log"
# What the service manager itself catches of the mitmdump job: only the log wrapper's own failures.
MITMDUMP_JOB_OUTPUT_NAME = "mitmdump.job.log"
TOOL_TIMEOUT_SECONDS = 30


class ServiceError(ConfigError):
    pass


@dataclass(frozen=True)
class Settings:
    """What `stabilizer run` is told on its command line, fixed into the job files."""

    host: str
    port: int
    litellm_config: Path
    policy: Path
    log_dir: Path
    env_file: Path
    # In front of a LiteLLM that runs elsewhere (`stabilizer run --upstream`): the mitmdump job only.
    upstream: str | None = None
    upstream_ca: Path | None = None
    classifier: str = "auto"  # auto mode's classifier (`--classifier-model`)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        # A job runs in another directory and environment than this command: every path absolute.
        ca = getattr(args, "upstream_ca", None)
        return cls(
            host=args.host,
            port=args.port,
            litellm_config=args.litellm_config.expanduser().resolve(),
            policy=args.policy.expanduser().resolve(),
            log_dir=args.log_dir.expanduser().resolve(),
            env_file=args.env_file.expanduser().resolve(),
            upstream=getattr(args, "upstream", None),
            upstream_ca=ca.expanduser().resolve() if ca else None,
            classifier=getattr(args, "classifier_model", "auto"),
        )

    @property
    def litellm_log(self) -> Path:
        return self.log_dir / stack.LITELLM_LOG_NAME


@dataclass(frozen=True)
class Job:
    name: str  # one of JOB_NAMES
    command: tuple[str, ...]
    output: Path  # stdout and stderr, appended


def jobs(settings: Settings) -> list[Job]:
    mitmdump = stack.mitmdump_command(
        host=settings.host,
        port=settings.port,
        litellm_log=settings.litellm_log,
        policy=settings.policy,
        litellm_config=None if settings.upstream else settings.litellm_config,
        upstream=settings.upstream,
        upstream_ca=settings.upstream_ca,
        classifier="" if settings.upstream else settings.classifier,
    )
    mitmdump_job = Job(
        JOB_NAMES[1],
        tuple(logpipe.wrapped(settings.log_dir / MITMDUMP_LOG_NAME, envexec.wrapped(settings.env_file, mitmdump))),
        settings.log_dir / MITMDUMP_JOB_OUTPUT_NAME,
    )
    if settings.upstream:
        return [mitmdump_job]
    litellm = stack.litellm_command(
        config=settings.litellm_config,
        log_file=settings.litellm_log,
        env_file=settings.env_file,
        front_door=stack.client_url(settings.host, settings.port),
    )
    return [
        # LiteLLM's output goes where it writes its log anyway: an env file it refuses
        # is reported in the very file the upstream addon and `stabilizer doctor` read.
        # It stays quiet (no access lines, see litellm_service/server.py), so it is not rotated:
        # its "running on" line is what a restarted mitmdump must find in it.
        Job(JOB_NAMES[0], tuple(litellm), settings.litellm_log),
        mitmdump_job,
    ]


def template(relative: str) -> str:
    return (TEMPLATE_DIR / relative).read_text()


@dataclass(frozen=True)
class JobStatus:
    installed: bool  # the job file is in place
    loaded: bool  # the service manager knows it (launchd: bootstrapped; systemd: enabled)
    running: bool = False
    pid: int | None = None
    last_exit: str | None = None

    def describe(self) -> str:
        if not self.installed and not self.loaded:
            return "not installed"
        parts = ["installed" if self.installed else "job file missing", "loaded" if self.loaded else "not loaded"]
        if self.running:
            parts.append(f"running (pid {self.pid})" if self.pid else "running")
        elif self.loaded:
            parts.append("not running")
        if self.last_exit is not None:
            parts.append(f"last exit status {self.last_exit}")
        return ", ".join(parts)


class Manager(Protocol):
    """A platform's service manager, as install / uninstall / status use it."""

    name: str  # launchd, systemd
    tool: str  # the command-line tool: launchctl, systemctl
    missing_hint: str  # what to do on a system without it

    def job_id(self, job_name: str) -> str: ...
    def job_file(self, job_name: str) -> Path: ...
    def render(self, job: Job, settings: Settings) -> str: ...
    def files_changed(self) -> None: ...
    def activate(self, job_names: list[str]) -> None: ...
    def deactivate(self, job_names: list[str]) -> None: ...
    def status(self, job_name: str) -> JobStatus: ...


def run_tool(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """launchctl / systemctl; a failure names the command and what it printed."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServiceError(f"`{' '.join(command)}` failed: {e}") from None
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ServiceError(f"`{' '.join(command)}` exited with status {result.returncode}: {output}")
    return result


def require_tool(manager: Manager) -> None:
    if shutil.which(manager.tool) is None:
        raise ServiceError(f"{manager.tool} not found: this system has no {manager.name}. {manager.missing_hint}")


def check_env_file(settings: Settings) -> None:
    """The services see the env file only: the master key and every key the config uses must be in it
    (in front of a LiteLLM elsewhere, the keys are LiteLLM's business)."""
    if settings.upstream:
        read_env_file(settings.env_file)  # envexec refuses a file others can read: so does install
        load_policy(str(settings.policy))
        return
    values = read_env_file(settings.env_file)
    if MASTER_KEY_VAR not in values:
        if os.environ.get(MASTER_KEY_VAR):
            raise ServiceError(
                f"{MASTER_KEY_VAR} is set in this shell but not in {settings.env_file}, and the services "
                f"read only that file: add {MASTER_KEY_VAR}=... to it (mode 0600), or unset it here "
                f"and install again to have one generated there"
            )
        ensure_master_key(settings.env_file)
        values = read_env_file(settings.env_file)
    load_litellm_config(settings.litellm_config, environ=values)
    load_policy(str(settings.policy))


def rendered(manager: Manager, settings: Settings) -> list[tuple[Path, str]]:
    return [(manager.job_file(job.name), manager.render(job, settings)) for job in jobs(settings)]


def install(manager: Manager, settings: Settings) -> list[str]:
    require_tool(manager)
    check_env_file(settings)
    # launchd and systemd open the output files but create no directories.
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    names = [job.name for job in jobs(settings)]
    if stale := [name for name in JOB_NAMES if name not in names and manager.job_file(name).exists()]:
        # Now in front of a LiteLLM elsewhere: the local LiteLLM's job goes.
        manager.deactivate(stale)
        for name in stale:
            manager.job_file(name).unlink()
            lines.append(f"removed {manager.job_file(name)}")
    for path, text in rendered(manager, settings):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        lines.append(f"wrote {path}")
    manager.files_changed()
    manager.activate(names)
    ids = ", ".join(manager.job_id(name) for name in names)
    return lines + [f"loaded {ids}; logs in {settings.log_dir}", "check the stack with: stabilizer doctor"]


def uninstall(manager: Manager) -> list[str]:
    require_tool(manager)
    manager.deactivate(list(JOB_NAMES))
    lines = []
    for name in JOB_NAMES:
        path = manager.job_file(name)
        if path.exists():
            path.unlink()
            lines.append(f"removed {path}")
    manager.files_changed()
    return lines or [f"no {manager.name} job files of stabilizer were installed"]


def expected_jobs(manager: Manager) -> list[str]:
    """The jobs an installation has: both, or mitmdump alone in front of a LiteLLM elsewhere."""
    mitmdump = manager.job_file(JOB_NAMES[1])
    if mitmdump.exists() and "stabilizer_upstream=" in mitmdump.read_text():
        return [JOB_NAMES[1]]
    return list(JOB_NAMES)


def job_statuses(manager: Manager) -> dict[str, JobStatus]:
    require_tool(manager)
    return {name: manager.status(name) for name in expected_jobs(manager)}


def add_arguments(parser: argparse.ArgumentParser, manager: Manager) -> None:
    parser.add_argument(
        "action",
        choices=["print", "install", "uninstall", "status"],
        help=f"print the {manager.name} job files, install and load them, remove them, or show their state",
    )
    parser.set_defaults(func=main, manager=manager)


def main(args: argparse.Namespace) -> int:
    manager: Manager = args.manager
    settings = Settings.from_args(args)
    try:
        if args.action == "print":
            for path, text in rendered(manager, settings):
                print(f"# {path}\n{text}", end="")
        elif args.action == "status":
            statuses = job_statuses(manager)
            for name, state in statuses.items():
                print(f"{manager.job_id(name)}: {state.describe()}")
            return 0 if all(state.installed and state.loaded for state in statuses.values()) else 1
        else:
            print("\n".join(install(manager, settings) if args.action == "install" else uninstall(manager)))
        return 0
    except ConfigError as e:
        print(f"stabilizer: {e}", file=sys.stderr)
        return 1
