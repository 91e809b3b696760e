"""`stabilizer doctor`: is everything in place, one line per check, and what to do if not.

Exit status 0 only when every check is ok. Nothing is changed: no key is
generated, no process started.
"""

import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from addons import MASTER_KEY_VAR, PROBE_HEADER, http_url
from addons.config.litellm_config import (
    LiteLLMConfigError,
    litellm_master_key,
    load_litellm_config,
    model_names,
    read_litellm_config,
)
from addons.config.policy import ModelPolicy, Policy, PolicyError, load_policy
from addons.config.routes import UNKNOWN, routes_of
from addons.errors.anthropic import is_anthropic_error
from addons.wire.logfollow import listening_address
from litellm_service import stack
from litellm_service.envfile import EnvFileError, read_env_file
from litellm_service.launchd import Launchd
from litellm_service.service import JOB_NAMES, Manager, ServiceError, job_statuses
from litellm_service.systemd import Systemd

DISTRIBUTION = "stabilizer"
MINIMUM_PYTHON = (3, 12)
CONNECT_TIMEOUT_SECONDS = 2.0
# The newest LiteLLM security fix this project knows of, and the first release of each line that
# has it. Source: LiteLLM's release notes for 1.106.12 and 1.108.13 (GitHub releases of
# BerriAI/litellm, read 2026-12-06): "Fixed /key/info letting a key with no user read other
# userless keys by hash or alias (#52838, #52925)", also in 1.109.3 and 1.110.2. Team mode
# (docs/teams.md) hands out exactly such keys. A release of a later line than these has it.
LITELLM_SECURITY_FIX = "/key/info let a key with no user read other userless keys (BerriAI/litellm#52838, #52925)"
LITELLM_FIXED_IN = ("1.106.12", "1.108.13", "1.109.3", "1.110.2")
START_HINT = "start it: `stabilizer run`, or `stabilizer launchd install` / `stabilizer systemd install`"


@dataclass(frozen=True)
class Result:
    ok: bool
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok' if self.ok else 'problem':<8} {self.what}: {self.detail}"
        text = f"{text}; fix: {self.fix}" if self.fix else text
        return " ".join(text.splitlines())  # one line per check, whatever a message or model name holds


def check_python() -> Result:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < MINIMUM_PYTHON:
        return Result(
            False,
            "python",
            f"{version} at {sys.executable}; mitmproxy 12 needs >= 3.12",
            "make install PYTHON=/path/to/python3.12",
        )
    return Result(True, "python", f"{version} at {sys.executable}")


def check_packages() -> Result:
    """The installed versions against this project's pinned requirements."""
    try:
        requirements = [Requirement(spec) for spec in metadata.requires(DISTRIBUTION) or []]
    except metadata.PackageNotFoundError:
        return Result(False, "packages", f"{DISTRIBUTION} is not installed in {sys.prefix}", "make install")
    found, wrong = [], []
    for requirement in requirements:
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # an optional extra (test)
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{requirement.name} missing")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            wrong.append(f"{requirement.name} {version} (wanted {requirement.specifier})")
        found.append(f"{requirement.name} {version}")
    if wrong:
        return Result(False, "packages", ", ".join(wrong), "make install")
    return Result(True, "packages", ", ".join(found))


def has_security_fix(version: Version) -> bool:
    """Whether this LiteLLM release has LITELLM_SECURITY_FIX: its line's fixed release or later, or a later line."""
    fixed = [Version(release) for release in LITELLM_FIXED_IN]
    same_line = [release for release in fixed if release.release[:2] == version.release[:2]]
    if same_line:
        return version >= same_line[0]
    return version.release[:2] > max(fixed).release[:2]


def check_litellm_version(version: str) -> Result:
    """The LiteLLM this stack starts, against the newest security fix known here."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return Result(False, "litellm", f"version {version!r} is not a release number", "make install")
    if has_security_fix(parsed):
        return Result(True, "litellm", f"{version}, with the newest security fix known here: {LITELLM_SECURITY_FIX}")
    return Result(
        False,
        "litellm",
        f"{version} lacks a security fix (in {', '.join(LITELLM_FIXED_IN)}): {LITELLM_SECURITY_FIX}",
        "make install (installs the pinned LiteLLM)",
    )


def installed_litellm() -> Result:
    try:
        return check_litellm_version(metadata.version("litellm"))
    except metadata.PackageNotFoundError:
        return Result(False, "litellm", f"not installed in {sys.prefix}", "make install")


def check_env_file(path: Path) -> tuple[Result, dict[str, str]]:
    """(result, the file's variables); the key itself is never shown."""
    try:
        values = read_env_file(path)
    except EnvFileError as e:
        return Result(False, "env file", str(e)), {}
    has_key = MASTER_KEY_VAR in values or bool(os.environ.get(MASTER_KEY_VAR))
    where = f"{path}: {len(values)} variable(s)" if path.exists() else f"{path} absent"
    if not has_key:
        return Result(
            False, "env file", f"{where}, no {MASTER_KEY_VAR}", "`stabilizer key` generates one there"
        ), values
    return Result(True, "env file", f"{where}, master key set"), values


def check_litellm_config(path: Path, environ: dict[str, str]) -> tuple[Result, dict | None]:
    """(result, the config when it is sound)."""
    try:
        config = load_litellm_config(path, environ=environ)
    except LiteLLMConfigError as e:
        return Result(False, "litellm config", str(e)), None
    return Result(True, "litellm config", f"{path}: models {', '.join(model_names(config))}"), config


def check_policy(path: Path) -> tuple[Result, Policy | None]:
    """(result, the policy when it is sound)."""
    try:
        policy = load_policy(str(path))
    except PolicyError as e:
        return Result(False, "policy", "; ".join(str(e).splitlines())), None
    return Result(True, "policy", str(path)), policy


def stack_status(host: str, port: int) -> dict | None:
    """What /_stabilizer/status says, if this stack is what answers there."""
    status = stack.fetch_status(host, port)
    return status if isinstance(status, dict) and "version" in status else None


def check_port(host: str, port: int, status: dict | None) -> Result:
    what = f"port {port}"
    try:
        stack.check_port_free(host, port)
    except stack.PortUnavailable as e:
        if status is not None:
            return Result(True, what, f"held by this stack (stabilizer {status['version']})")
        return Result(False, what, f"not this stack (no /_stabilizer/status there): {e}")
    return Result(True, what, "free (the stack is not running)")


def last_address(log: Path) -> tuple[str, int] | None:
    address = None
    with log.open("rb") as lines:
        for line in lines:
            address = listening_address(line) or address
    return address


def answers(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError:
        return False
    return True


def check_litellm_log(log: Path) -> tuple[Result, str | None]:
    """(result, LiteLLM's URL as learned from its log)."""
    if not log.exists():
        return Result(
            False,
            "litellm log",
            f"{log} not found: no LiteLLM has written there",
            f"{START_HINT}; or point --litellm-log / --log-dir at the log it writes",
        ), None
    address = last_address(log)
    if address is None:
        return Result(
            False,
            "litellm log",
            f"{log} has no 'Uvicorn running on' line: LiteLLM did not finish starting",
            f"read the end of {log}",
        ), None
    url = http_url(*address)
    if not answers(address):
        return Result(
            False,
            "litellm log",
            f"LiteLLM at {url} (from {log}) is not answering: stopped or crashed",
            f"read the end of {log}, then {START_HINT}",
        ), url
    return Result(True, "litellm log", f"LiteLLM at {url} (from {log})"), url


def check_status(host: str, port: int, status: dict | None, log: Path, litellm_url: str | None) -> Result:
    what = "status"
    if status is None:
        return Result(False, what, f"nothing answers http://{host}:{port}/_stabilizer/status", START_HINT)
    if Path(status.get("litellm_log") or "").resolve() != log.resolve():
        return Result(
            False,
            what,
            f"mitmdump follows {status.get('litellm_log')}, not {log}",
            "check with the stack's own --log-dir / --litellm-log, or restart the stack",
        )
    if status.get("upstream") is None:
        return Result(False, what, f"mitmdump knows no LiteLLM port yet (it follows {log})", START_HINT)
    if litellm_url and status["upstream"] != litellm_url:
        return Result(
            False,
            what,
            f"mitmdump routes to {status['upstream']}, the log says {litellm_url}",
            "wait a second and check again; if it stays, restart mitmdump",
        )
    return Result(True, what, f"mitmdump routes to {status['upstream']}")


# What every Claude Code request carries: a tool. The model may call it or answer; either is fine.
PROBE_TOOL = {
    "name": "echo",
    "description": "Echo a word back.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}
PROBE_PROMPT = "Say OK."
# Enough for a thinking model to think a little and still answer.
THINKING_PROBE = {"max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 512}}


def ask_model(base_url: str, model: str, key: str, timeout: float, thinking: bool = False) -> tuple[int, dict | None]:
    """One request as Claude Code shapes it, with a tool, and with thinking on if `thinking`."""
    body = {
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
        "tools": [PROBE_TOOL],
        **(THINKING_PROBE if thinking else {}),
    }
    request = urllib.request.Request(
        f"{base_url}/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "content-type": "application/json",
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            PROBE_HEADER: "doctor",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def thinks(entry: ModelPolicy) -> bool:
    """Whether the policy describes the model as a thinking one (a switch, an effort or reasoning it needs back)."""
    thinking = entry.thinking
    return thinking is not None and bool(thinking.enable or thinking.effort_field or thinking.require_reasoning)


def check_model(base_url: str, model: str, key: str, timeout: float, thinking: bool = False) -> Result:
    """A request with a tool, then, for a thinking model, one with thinking on: the first failure named."""
    what = f"model {model}"
    asked = ["a request with a tool", *(["one with thinking"] if thinking else [])]
    for probe, with_thinking in zip(asked, (False, True)):
        try:
            status, body = ask_model(base_url, model, key, timeout, with_thinking)
        except OSError as e:
            return Result(False, what, f"no answer to {probe} within {timeout:.0f} s: {e}", "read the LiteLLM log")
        if not (status == 200 and isinstance(body, dict) and body.get("type") == "message"):
            message = body["error"]["message"] if is_anthropic_error(body) else "not an Anthropic message"
            fix = (
                "the stack runs with another master key than this shell or env file has: restart it after "
                "changing the key"
                if status == 401
                else "follow the hint above"
                if "refused the request" in message and ". Set models." in message
                else "check the model's entry in the LiteLLM config and its API key; read the LiteLLM log"
            )
            return Result(False, what, f"HTTP {status} to {probe}: {message[:600]}", fix)
    return Result(True, what, f"answered {' and '.join(asked)}")


# Auto mode's probe: the question LiteLLM asks its classifier (its prompt, its layout), about one
# harmless tool call.
PROBE_TOOL_USE_ID = "toolu_doctor_probe"
CLASSIFIER_QUESTION = (
    "Agent environment:\n{}\n\nConversation so far, one JSON line per turn:\n"
    '{"user": "Count the files here."}\n\nTool calls to classify:\n'
    + json.dumps([{"id": PROBE_TOOL_USE_ID, "name": "Bash", "input": {"command": "ls | wc -l"}}])
)
# What LiteLLM gives the classifier to answer in (CLASSIFIER_MAX_TOKENS of its safeguards.py).
CLASSIFIER_MAX_TOKENS = 4096


def classifiers(status: dict | None, config: dict | None, policy: Policy | None) -> list[str]:
    """The models that judge auto mode's tool calls in the running stack (none: it does not answer auto
    mode), but a mock (LiteLLM's mock_response, the demo model), which answers everything with its words."""
    chosen = ((status or {}).get("safeguards") or {}).get("classifier")
    if not chosen or not config:
        return []
    routes = routes_of(config["model_list"])
    judges = (
        [chosen]
        if chosen != "auto"
        else [
            (policy.for_model(model, routes.get(model, UNKNOWN).model_id).background_model if policy else None) or model
            for model in model_names(config)
        ]
    )
    mocks = {entry["model_name"] for entry in config["model_list"] if "mock_response" in entry["litellm_params"]}
    return [judge for judge in dict.fromkeys(judges) if judge not in mocks]


def probe_verdict(text: str) -> object:
    """The probe's verdict in a classifier's answer, read as LiteLLM reads it (None: none)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        answer = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        return None
    verdicts = answer.get("verdicts") if isinstance(answer, dict) else None
    verdict = verdicts.get(PROBE_TOOL_USE_ID) if isinstance(verdicts, dict) else None
    return verdict.get("flagged") if isinstance(verdict, dict) else None


def check_classifier(base_url: str, model: str, key: str, timeout: float) -> Result:
    """Auto mode's classifier asked LiteLLM's question through the stack, shaped like its real call."""
    # LiteLLM's own words, read from the LiteLLM it runs; offline, as litellm_service/server.py starts it.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm.llms.anthropic.pass_through.safeguards import CLASSIFIER_SYSTEM_PROMPT

    what = f"auto mode classifier {model}"
    body = {
        "model": model,
        "max_tokens": CLASSIFIER_MAX_TOKENS,
        "system": CLASSIFIER_SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": CLASSIFIER_QUESTION}],
    }
    request = urllib.request.Request(
        f"{base_url}/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        return Result(False, what, f"HTTP {e.code} to a classification", "read the LiteLLM log")
    except (OSError, ValueError) as e:
        return Result(False, what, f"no answer to a classification within {timeout:.0f} s: {e}", "read the LiteLLM log")
    blocks = answer.get("content") if isinstance(answer, dict) else None
    text = "".join(b.get("text", "") for b in blocks or [] if isinstance(b, dict) and b.get("type") == "text")
    flagged = probe_verdict(text)
    if not isinstance(flagged, bool):
        return Result(
            False,
            what,
            f"no verdict in its answer ({text[:200]!r}): Claude Code would get 'unavailable' for every tool call",
            "choose another with `stabilizer run --classifier-model NAME` or the policy's background_model",
        )
    return Result(True, what, f"judged a probe tool call ({'flagged' if flagged else 'not flagged'})")


def read_yaml_or_none(path: Path) -> object:
    """The config's parsed YAML, or None when it cannot be read (its own check says why)."""
    try:
        return read_litellm_config(path)
    except LiteLLMConfigError:
        return None


def service_manager(choice: str) -> Manager | None:
    if choice == "launchd" or (choice == "auto" and sys.platform == "darwin"):
        return Launchd()
    if choice == "systemd" or (choice == "auto" and sys.platform.startswith("linux")):
        return Systemd()
    return None


def check_services(choice: str) -> Result:
    """The service jobs where they are installed or asked about (--services launchd|systemd)."""
    manager = service_manager(choice)
    if manager is None:
        return Result(True, "services", f"not checked (--services {choice})")
    what = f"{manager.name} jobs"
    if choice == "auto" and not any(manager.job_file(name).exists() for name in JOB_NAMES):
        # The stack in the foreground (`stabilizer run`) needs no service manager, nor a
        # user bus, which a machine without a login session lacks.
        return Result(True, what, f"none installed (--services {manager.name} checks them anyway)")
    try:
        statuses = job_statuses(manager)
    except ServiceError as e:
        return Result(False, what, str(e), "pass --services none if you run the stack with `stabilizer run`")
    lines = [f"{manager.job_id(name)} {statuses[name].describe()}" for name in statuses]
    if all(state.installed and state.loaded for state in statuses.values()):
        return Result(True, what, "; ".join(lines))
    return Result(
        False,
        what,
        "; ".join(lines),
        f"stabilizer {manager.name} install (or --services none if you run the stack with `stabilizer run`)",
    )


def checks(args: argparse.Namespace) -> Iterator[Result]:
    """Every check in order; later ones use what earlier ones found."""
    yield check_python()
    yield check_packages()
    yield installed_litellm()
    env_result, env_values = check_env_file(args.env_file)
    yield env_result
    # As the stack sees it: the process environment wins over the file.
    environ = {**env_values, **os.environ}
    config_result, config = check_litellm_config(args.litellm_config, environ)
    yield config_result
    policy_result, policy = check_policy(args.policy)
    yield policy_result
    status = stack_status(args.host, args.port)
    yield check_port(args.host, args.port, status)
    log = args.litellm_log or args.log_dir / stack.LITELLM_LOG_NAME
    log_result, litellm_url = check_litellm_log(log)
    yield log_result
    status_result = check_status(args.host, args.port, status, log, litellm_url)
    yield status_result
    # The key LiteLLM checks: the config's master_key, literal or from the environment.
    key = litellm_master_key(read_yaml_or_none(args.litellm_config), environ)
    if not status_result.ok or not log_result.ok or not key:
        # A LiteLLM that is down would hold each model's request for the stack's restart wait.
        reason = (
            "the stack is not answering"
            if not status_result.ok
            else "LiteLLM is not answering"
            if not log_result.ok
            else "there is no master key"
        )
        yield Result(False, "models", f"not asked: {reason}", "fix the problems above first")
    else:
        base_url = f"http://{args.host}:{args.port}"
        routes = routes_of(config["model_list"]) if config else {}
        for model in model_names(config) if config else []:
            entry = policy.for_model(model, routes.get(model, UNKNOWN).model_id) if policy else None
            yield check_model(base_url, model, key, args.timeout, thinking=entry is not None and thinks(entry))
        judges = classifiers(status, config, policy)
        if not judges:
            yield Result(
                True, "auto mode", "not answered by this stack (`stabilizer run --upstream`, or mitmdump alone)"
            )
        for judge in judges:
            yield check_classifier(base_url, judge, key, args.timeout)
    yield check_services(args.services)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--litellm-log", type=Path, help="LiteLLM's log (default: LOG_DIR/litellm.log)")
    parser.add_argument(
        "--services",
        choices=["auto", "launchd", "systemd", "none"],
        default="auto",
        help="which service jobs to check (auto: launchd on macOS, systemd on Linux, where installed; none: skip)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds each model may take to answer")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    healthy = True
    for result in checks(args):
        print(result.line(), flush=True)
        healthy &= result.ok
    return 0 if healthy else 1
