"""Run the real Claude Code CLI from tests, hermetically.

`make claude-code` installs the pinned npm package into .cache/claude-code/<version>. The
npm package ships a stub `bin/claude.exe` that only becomes the real program if
its postinstall runs (npm may skip it), so we call the native binary from the
platform package (`@anthropic-ai/claude-code-<platform>/claude`) directly.

Every run gets a throwaway HOME (so no user settings, credentials or session
history leak in or out) and an environment stripped of the caller's
ANTHROPIC_* / CLAUDE* variables, then pointed at the given base URL.
"""

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CLAUDE_DIR = REPO_ROOT / ".cache" / "claude-code"  # one folder per version, as the Makefile installs it

# Variables from the caller's shell that would change what the CLI does
# (a real API key, Bedrock/Vertex switches, a config dir, nested-session markers).
_SCRUBBED_PREFIXES = ("ANTHROPIC_", "CLAUDE")


def pinned_version() -> str:
    """The CLI version the Makefile pins (single source of truth); tests/flows is recorded with it."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^CLAUDE_CODE_VERSION\s*:?=\s*(\S+)", makefile, re.MULTILINE)
    if match is None:
        raise RuntimeError("CLAUDE_CODE_VERSION not found in Makefile")
    return match.group(1)


def version_under_test() -> str:
    """The CLI version the tests run: `make test CLAUDE_CODE_VERSION=x.y.z` passes its choice
    on in the environment; otherwise the pinned one."""
    return os.environ.get("CLAUDE_CODE_VERSION") or pinned_version()


def platform_key() -> str:
    """npm's name for this platform, as the package's install.cjs computes it."""
    cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    if sys.platform == "linux":
        musl = platform.libc_ver()[0] != "glibc"
        return f"linux-{cpu}" + ("-musl" if musl else "")
    return f"{sys.platform}-{cpu}"


def claude_binary() -> Path:
    """Path of the native Claude Code binary installed by `make claude-code`."""
    packages = CLAUDE_DIR / version_under_test() / "node_modules" / "@anthropic-ai"
    expected = packages / f"claude-code-{platform_key()}" / "claude"
    if expected.is_file():
        return expected
    # npm installs only the optional dependency whose os/cpu match node's own,
    # which can differ from our guess (e.g. x64 node under Rosetta).
    installed = sorted(packages.glob("claude-code-*/claude"))
    if len(installed) == 1:
        return installed[0]
    raise FileNotFoundError(
        f"Claude Code CLI not found at {expected}"
        + (f" (found several: {[str(p) for p in installed]})" if installed else "")
        + ". Run `make claude-code` to install it."
    )


class ClaudeRunError(RuntimeError):
    """The CLI did not produce a JSON result (crash, timeout, bad flags)."""

    def __init__(self, message: str, *, returncode: int | None, stdout: str, stderr: str):
        super().__init__(f"{message}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ClaudeResult(dict):
    """The CLI's JSON result, plus the raw process output for assertion messages."""

    def __init__(self, result: dict, *, returncode: int, stdout: str, stderr: str):
        super().__init__(result)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def claude_env(
    *, base_url: str, auth_token: str, model: str, home: str | os.PathLike, env_extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for one hermetic CLI run against `base_url`, `model` everywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        {
            "HOME": str(home),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_AUTH_TOKEN": auth_token,
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
            "CLAUDE_CODE_SUBAGENT_MODEL": model,
        }
    )
    env.update(env_extra or {})
    return env


def run_claude(
    prompt: str,
    *,
    base_url: str,
    auth_token: str,
    model: str,
    cwd: str | os.PathLike,
    home: str | os.PathLike | None = None,
    allowed_tools: Iterable[str] = (),
    permission_mode: str | None = None,
    extra_args: Iterable[str] = (),
    env_extra: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> ClaudeResult:
    """Run `claude -p PROMPT --output-format json` and return its parsed result.

    `allowed_tools` (e.g. ["Bash", "Write"]) lets those tools run without a
    permission prompt; Read inside `cwd` needs nothing. `permission_mode` is
    passed as --permission-mode ("acceptEdits", "bypassPermissions", ...);
    bypassPermissions is refused when running as root unless IS_SANDBOX=1 is
    in `env_extra`.

    A result with is_error true (e.g. the API answered 400) is returned, not
    raised: the exit code is then 1 and tests usually want to inspect it.
    Raises ClaudeRunError when there is no JSON result at all.
    """
    args = [str(claude_binary()), "-p", prompt, "--output-format", "json"]
    allowed_tools = list(allowed_tools)
    if allowed_tools:
        args += ["--allowedTools", ",".join(allowed_tools)]
    if permission_mode is not None:
        args += ["--permission-mode", permission_mode]
    args += list(extra_args)

    with tempfile.TemporaryDirectory(prefix="claude-home-") as scratch_home:
        env = claude_env(
            base_url=base_url,
            auth_token=auth_token,
            model=model,
            home=home if home is not None else scratch_home,
            env_extra=env_extra,
        )
        try:
            proc = subprocess.run(
                args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise ClaudeRunError(
                f"claude timed out after {timeout}s",
                returncode=None,
                stdout=_text(exc.stdout),
                stderr=_text(exc.stderr),
            ) from None

    lines = proc.stdout.strip().splitlines()
    try:
        # The result is the last line; anything before it is not ours to parse.
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or result.get("type") != "result":
        raise ClaudeRunError(
            f"claude exited {proc.returncode} without a JSON result",
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
        )
    return ClaudeResult(result, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def session_prompt(prompt: str, *, first: bool = False, extra_args: Iterable[str] = (), **run) -> ClaudeResult:
    """One prompt of a session kept in `run`'s cwd and home: the first starts it, every later one
    goes on with --continue. Asserted to answer (run_claude's other arguments in `run`)."""
    extra_args = (*extra_args, *(() if first else ("--continue",)))
    result = run_claude(prompt, extra_args=extra_args, **run)
    assert not result["is_error"], result.describe()
    return result


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""
