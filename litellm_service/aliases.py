"""`stabilizer aliases`: a shell function `claude-<model>` for each model in the LiteLLM config.

    eval "$(stabilizer aliases)"        # in ~/.bashrc or ~/.zshrc

Each function runs `claude` in a subshell with ANTHROPIC_API_KEY unset and the
endpoint, the master key and the model set, for background tasks and subagents
too, unless the model's policy entry names another model for them
(background_model, subagent_model). It also passes the model's limits from the policy: Claude Code assumes a
window of its own for any model name it does not know (1M tokens in 2.1.332),
so without being told it would never compact before a 128K backend refuses the
request, or before the request addon has to trim the history. And it turns on Claude Code's gateway model
discovery, so `/model` offers the config's models with their limits.

The master key is not in the printed text: each function asks `stabilizer key`
for it when it runs. So the output can be shown, pasted or cached in a file
without leaking the key, and a key changed in the env file needs no new shell.
Every value is single-quoted, so the text is safe to eval whatever the config's
model names contain.
"""

import argparse
import re
import sys

from addons.config.litellm_config import EveryVariableSet, load_litellm_config, model_names
from addons.config.policy import ModelPolicy, load_policy
from addons.config.routes import UNKNOWN, routes_of
from addons.errors.config import ConfigError
from litellm_service import stack

FUNCTION_PREFIX = "claude-"
# Characters bash and zsh accept in a function name without quoting; the rest become "-".
NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
# Claude Code's model for each of its roles, and the policy field that can name another
# model for it (None: the function's own model). Its background work (titles, summaries,
# quick checks) goes to the haiku model.
MODEL_VARIABLES = {
    "ANTHROPIC_MODEL": None,
    "ANTHROPIC_DEFAULT_HAIKU_MODEL": "background_model",
    "ANTHROPIC_DEFAULT_SONNET_MODEL": None,
    "ANTHROPIC_DEFAULT_OPUS_MODEL": None,
    "CLAUDE_CODE_SUBAGENT_MODEL": "subagent_model",
}
# How Claude Code 2.1.332 sizes a window (read from its binary on 2026-11-26; the compaction is
# measured by tests/e2e/test_compaction.py): for a model name it does not know it takes
# CLAUDE_CODE_MAX_CONTEXT_TOKENS (names beginning "claude" ignore it); CLAUDE_CODE_AUTO_COMPACT_WINDOW
# caps that, but reads anything under 100K as 100K. It compacts when its count passes the window
# minus min(max output tokens, 20000), minus a 13000-token buffer for the summary.
CLAUDE_CODE_OUTPUT_RESERVE_CAP = 20_000
AUTO_COMPACT_WINDOW_MINIMUM = 100_000


def function_names(models: list[str]) -> dict[str, str]:
    """model -> a unique function name made only of letters, digits, "_" and "-"."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for model in models:
        base = FUNCTION_PREFIX + (NOT_NAME_CHARACTERS.sub("-", model).strip("-") or "model")
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}-{suffix}", suffix + 1
        names[model] = name
        taken.add(name)
    return names


def quote(value: str) -> str:
    """Single quotes around everything, even safe words: the same rule for every value in bash and zsh."""
    return "'" + value.replace("'", "'\\''") + "'"


def claude_code_window(limits: ModelPolicy) -> int:
    """The window to tell Claude Code: what it is left with after its own output reserve is the request addon's budget.

    The request addon trims a history above context_window - max output - safety margin; Claude
    Code reserves only min(max output, 20000) of the window it is told. Told this, it compacts
    at its summary buffer below the budget, so the trimming is the fallback it should be.
    """
    output = limits.max_output_tokens
    return limits.input_budget(output) + min(output, CLAUDE_CODE_OUTPUT_RESERVE_CAP)


def claude_code_environment(model: str, limits: ModelPolicy, base_url: str) -> dict[str, str]:
    """What a claude-<model> function exports, the auth token apart."""
    window = str(claude_code_window(limits))
    environment = {
        "ANTHROPIC_BASE_URL": base_url,
        **{variable: (getattr(limits, role) if role else None) or model for variable, role in MODEL_VARIABLES.items()},
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": window,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(limits.max_output_tokens),
        # `/model` lists the stack's models (GET /v1/models, addons/model_directory.py), not Anthropic's.
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
    }
    if int(window) >= AUTO_COMPACT_WINDOW_MINIMUM:
        # The one window a model named "claude..." takes; under the minimum Claude Code warns at start.
        environment["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = window
    return environment


def model_function(name: str, model: str, limits: ModelPolicy, base_url: str, key_command: list[str]) -> str:
    exports = claude_code_environment(model, limits, base_url)
    lines = [
        # `function NAME`, not `NAME()`: an alias of the same name would be expanded in the latter.
        f"function {name} {{",
        "  (",  # a subshell: the caller's environment stays as it was
        # Claude Code prefers an API key over the auth token, and would send the Anthropic key here.
        "    unset ANTHROPIC_API_KEY",
        # Its own line: `export X=$(...)` would hide a failing `stabilizer key`.
        f"    ANTHROPIC_AUTH_TOKEN=$({' '.join(map(quote, key_command))}) || exit",
        "    export ANTHROPIC_AUTH_TOKEN",
        *(f"    export {variable}={quote(value)}" for variable, value in exports.items()),
        '    claude "$@"',
        "  )",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render(models: list[tuple[str, ModelPolicy]], base_url: str, key_command: list[str]) -> str:
    names = function_names([model for model, _ in models])
    header = (
        "# Claude Code through stabilizer: one claude-<model> function per model in the LiteLLM config.\n"
        '# Load with: eval "$(stabilizer aliases)". No key in here: each function runs `stabilizer key`.\n'
    )
    return header + "".join(
        model_function(names[model], model, limits, base_url, key_command) for model, limits in models
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        config = load_litellm_config(args.litellm_config, environ=EveryVariableSet())
        policy = load_policy(str(args.policy))
    except ConfigError as e:
        print(f"stabilizer: {e}", file=sys.stderr)
        return 1
    if unknown := policy.unknown_model_names(model_names(config)):
        print(f"stabilizer: {args.policy}: {unknown[0]} ({args.litellm_config})", file=sys.stderr)
        return 1
    key_command = [
        stack.venv_tool("stabilizer"),
        "key",
        "--env-file",
        str(args.env_file.expanduser().resolve()),
        "--litellm-config",
        str(args.litellm_config.expanduser().resolve()),
    ]
    routes = routes_of(config["model_list"])
    models = []
    for model in model_names(config):
        if "\0" in model:  # no shell variable can hold it
            print(f"stabilizer: skipped model {model!r}: a name with a NUL character", file=sys.stderr)
        else:
            # The limits the request addon works with: found by name, else by the provider's model id.
            models.append((model, policy.for_model(model, routes.get(model, UNKNOWN).model_id)))
    print(render(models, stack.client_url(args.host, args.port), key_command), end="")
    return 0
