"""The `stabilizer` command."""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import argon2

from addons import http_url
from addons.config.litellm_config import (
    added_settings,
    added_settings_note,
    litellm_master_key,
    load_litellm_config,
    model_names,
    read_litellm_config,
)
from addons.config.policy import load_policy
from addons.errors.config import ConfigError
from addons.wire.logfollow import LogFollower, listening_address
from litellm_service import aliases, arguments, doctor, profiles, service, stack
from litellm_service.envfile import load_into_environ
from litellm_service.launchd import Launchd
from litellm_service.systemd import Systemd

# Like launchd's ThrottleInterval: a LiteLLM that dies at once is not restarted in a tight loop.
RESTART_THROTTLE_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 120.0


class StartupError(ConfigError):
    """The stack's own processes did not come up."""


def say(message: str) -> None:
    print(f"stabilizer: {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Linux: children get SIGTERM if this process dies without cleaning up."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kwargs)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def web_password_hash(token: str) -> str:
    """mitmweb's web_password as an argon2 hash, so the token is not in the process list.

    The token is random (192 bits), so the cheapest argon2 parameters protect
    it as well as the expensive ones, and mitmweb checks it in a millisecond.
    """
    return argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(token)


class ForegroundRun:
    """`stabilizer run`: LiteLLM and mitmdump as siblings in the foreground; LiteLLM is restarted whenever it dies."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        # In front of a LiteLLM elsewhere, a LiteLLM config only matters when one is given.
        self.litellm_config_given = args.litellm_config is not None
        args.litellm_config = args.litellm_config or stack.DEFAULT_LITELLM_CONFIG
        self.log_dir: Path = args.log_dir
        self.litellm_log: Path = args.attach_log or self.log_dir / stack.LITELLM_LOG_NAME
        self.litellm: subprocess.Popen | None = None
        self.mitmdump: subprocess.Popen | None = None
        self.stopping = False
        # mitmweb's login token: printed once when the stack is ready, never stored.
        self.web_token = secrets.token_urlsafe(24) if args.web else None

    def check_config(self) -> list[str]:
        """Everything start-up can check, before any process starts; a ConfigError says what is wrong."""
        stack.check_port_free(self.args.host, self.args.port)
        if self.args.web:
            stack.check_port_free("127.0.0.1", self.args.web_port)
        load_policy(str(self.args.policy) if self.args.policy else None)
        if self.args.upstream:
            stack.check_upstream(self.args.upstream, self.args.upstream_ca)
            return []
        if self.args.attach_log:
            return []
        # Both children inherit it: LiteLLM checks keys with it, and so does mitmdump's auth addon.
        load_into_environ(self.args.env_file)
        config = load_litellm_config(self.args.litellm_config)
        if added := added_settings(config):
            # LiteLLM's start (litellm_service/server.py) sets them and says so in its log, unseen here.
            say(added_settings_note(self.args.litellm_config, added))
        return model_names(config)

    def start_litellm(self) -> None:
        self.litellm = spawn(
            stack.litellm_command(
                config=self.args.litellm_config,
                log_file=self.litellm_log,
                env_file=self.args.env_file,
                front_door=stack.client_url(self.args.host, self.args.port),
            )
        )

    def start_mitmdump(self, target: str | None) -> None:
        command = stack.mitmdump_command(
            host=self.args.host,
            port=self.args.port,
            litellm_log=self.litellm_log,
            policy=self.args.policy,
            litellm_config=self.args.litellm_config if not self.args.upstream or self.litellm_config_given else None,
            tool="mitmweb" if self.args.web else "mitmdump",
            record=self.args.record,
            web_port=self.args.web_port,
            web_password=web_password_hash(self.web_token) if self.web_token else "",
            max_flows=self.args.max_flows,
            upstream=self.args.upstream,
            upstream_ca=self.args.upstream_ca,
            target=target,
            # A LiteLLM elsewhere was not set up to send its classifier call here.
            classifier="" if self.args.upstream else self.args.classifier_model,
        )
        if self.args.quiet:
            command.append("-q")
        self.mitmdump = spawn(command)

    def wait_for_litellm(self, new_lines: LogFollower) -> str:
        """The address of the LiteLLM this run started, once its log says it listens."""
        assert self.litellm is not None  # run() started it
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.litellm.poll() is not None:
                raise StartupError(f"LiteLLM exited with status {self.litellm.returncode}; see {self.litellm_log}")
            for line in new_lines.read_lines():
                if address := listening_address(line):
                    return http_url(*address)
            time.sleep(0.2)
        raise StartupError(f"LiteLLM did not start within {READY_TIMEOUT_SECONDS:.0f} s; see {self.litellm_log}")

    def wait_ready(self, ours: str | None) -> str:
        """Until mitmdump answers and routes to `ours`, the LiteLLM this run started
        (None: attached to a LiteLLM started elsewhere, any learned port will do)."""
        assert self.mitmdump is not None  # run() started it
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.mitmdump.poll() is not None:
                raise StartupError(f"mitmdump exited with status {self.mitmdump.returncode} (see its output above)")
            if self.litellm and self.litellm.poll() is not None:
                raise StartupError(f"LiteLLM exited with status {self.litellm.returncode}; see {self.litellm_log}")
            status = stack.fetch_status(self.args.host, self.args.port)
            if status and status["upstream"] and status["upstream"] == (ours or status["upstream"]):
                return status["upstream"]
            time.sleep(0.2)
        raise StartupError(f"the stack was not ready after {READY_TIMEOUT_SECONDS:.0f} s; see {self.litellm_log}")

    def handle_signal(self, signum, frame) -> None:
        self.stopping = True

    def run(self) -> int:
        models = self.check_config()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)
        new_lines = LogFollower(str(self.litellm_log))
        new_lines.read_lines()  # what is already in the log belongs to an earlier LiteLLM
        try:
            ours = None
            if not (self.args.attach_log or self.args.upstream):
                self.start_litellm()
                # mitmdump starts with it as its target, which mitmweb shows (not a placeholder).
                ours = self.wait_for_litellm(new_lines)
            self.start_mitmdump(ours)
            upstream = self.wait_ready(ours)
            say(
                f"ready on http://{self.args.host}:{self.args.port} -> LiteLLM {upstream}"
                + (f" (models: {', '.join(models)})" if models else "")
            )
            if self.args.record:
                say(f"recording flows, keys replaced, to {self.args.record}")
            if self.web_token:
                say(
                    f"mitmweb: http://127.0.0.1:{self.args.web_port}/?token={self.web_token} "
                    "(shown only this once; the token stays valid until the stack stops)"
                )
            return self.supervise()
        except StartupError as e:
            if not self.stopping:
                say(str(e))
                return 1
            return 0
        finally:
            stop(self.mitmdump)
            stop(self.litellm)
            new_lines.close()

    def supervise(self) -> int:
        assert self.mitmdump is not None  # run() started it
        last_start = time.monotonic()
        while not self.stopping:
            if self.mitmdump.poll() is not None:
                say(f"mitmdump exited with status {self.mitmdump.returncode}; stopping")
                return 1
            if self.litellm and self.litellm.poll() is not None:
                say(f"LiteLLM exited with status {self.litellm.returncode}; restarting it")
                time.sleep(max(0.0, last_start + RESTART_THROTTLE_SECONDS - time.monotonic()))
                self.start_litellm()
                last_start = time.monotonic()
            time.sleep(0.1)
        say("stopping")
        return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        return ForegroundRun(args).run()
    except ConfigError as e:
        say(str(e))
        return 1


def cmd_key(args: argparse.Namespace) -> int:
    """The key LiteLLM and the front door check: the LiteLLM config's master_key, resolved
    with the env file's values (its LITELLM_MASTER_KEY created on first use)."""
    try:
        load_into_environ(args.env_file)
        config = read_litellm_config(args.litellm_config)  # only the key: provider keys may be unset
    except ConfigError as e:
        say(str(e))
        return 1
    if not (key := litellm_master_key(config, os.environ)):
        say(
            f"{args.litellm_config}: general_settings.master_key names a variable that is not set; "
            f"put it in {args.env_file} (mode 0600) or use master_key: os.environ/LITELLM_MASTER_KEY"
        )
        return 1
    print(key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stabilizer", description="A fixed, forgiving endpoint for Claude Code in front of LiteLLM."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start LiteLLM and mitmdump with the addons, in the foreground")
    arguments.address(run)
    arguments.configs(run, litellm_config=None)  # None: not given (with --upstream, read only when given)
    arguments.log_dir(run)
    arguments.env_file(run)
    arguments.upstream(run)
    arguments.classifier(run)
    run.add_argument("--attach-log", type=Path, help="start only mitmdump and follow this LiteLLM log")
    run.add_argument("-q", "--quiet", action="store_true", help="no per-request lines from mitmdump")
    run.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write every flow, with keys replaced, to this mitmproxy flow file (open it with mitmweb -r FILE)",
    )
    run.add_argument(
        "--web",
        action="store_true",
        help="run the addons under mitmweb to watch the flows; its address and a login token are printed once",
    )
    run.add_argument(
        "--web-port",
        type=int,
        default=stack.DEFAULT_WEB_PORT,
        help=f"with --web: mitmweb's port on 127.0.0.1 (default {stack.DEFAULT_WEB_PORT})",
    )
    run.add_argument(
        "--max-flows",
        type=int,
        help="with --web: flows kept in memory, the oldest dropped first (default: the addon option "
        "stabilizer_max_flows, 1000; 0: no cap)",
    )
    run.set_defaults(func=cmd_run)

    key = commands.add_parser("key", help="print the master key clients send (ANTHROPIC_AUTH_TOKEN)")
    arguments.configs(key)
    arguments.env_file(key)
    key.set_defaults(func=cmd_key)

    for manager, text in (
        (Launchd(), "the stack as macOS LaunchAgents"),
        (Systemd(), "the stack as systemd --user units (Linux)"),
    ):
        jobs = commands.add_parser(manager.name, help=text)
        arguments.stack_arguments(jobs)
        arguments.upstream(jobs)
        arguments.classifier(jobs)
        service.add_arguments(jobs, manager)
    shell = commands.add_parser("aliases", help="print claude-<model> shell functions; eval them")
    arguments.address(shell)
    arguments.configs(shell)
    arguments.env_file(shell)
    aliases.add_arguments(shell)
    checks = commands.add_parser("doctor", help="check the installation and the running stack")
    arguments.stack_arguments(checks)
    doctor.add_arguments(checks)
    listing = commands.add_parser("profiles", help="list the models the policy knows, with their limits")
    arguments.configs(listing)
    profiles.add_arguments(listing)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
