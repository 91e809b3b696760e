"""`stabilizer profiles`: the models the policy knows, with their limits, and the names that reach them.

    stabilizer profiles
    stabilizer profiles --policy my-policy.yaml --litellm-config my-litellm.yaml

One line per entry of the policy's `models` (config/stabilizer.yaml), then the
defaults: window, output limit, thinking, images, tool limit, and the model
names of the LiteLLM config served by it (by name, or by the provider's model
id behind a name, addons/config/routes.py) with their route.
"""

import argparse
import sys

from addons.config.litellm_config import EveryVariableSet, load_litellm_config
from addons.config.policy import ModelPolicy, load_policy
from addons.config.routes import routes_of
from addons.errors.config import ConfigError

COLUMNS = ("model", "window", "output", "thinking", "images", "tools", "served as")


def thinking_of(entry: ModelPolicy) -> str:
    """How the model thinks, as the policy says: switchable, on (no switch) or never."""
    thinking = entry.thinking
    if thinking is None:
        return "never"
    words = ["switchable" if thinking.enable or thinking.disable else "backend decides"]
    if thinking.effort_field:
        words.append(f"effort in {thinking.effort_field}")
    if thinking.require_reasoning:
        words.append("reasoning required back")
    return ", ".join(words)


def rows(policy_entries: dict[str, ModelPolicy], defaults: ModelPolicy, served: dict[str, list[str]]) -> list[tuple]:
    return [
        (
            name,
            f"{entry.context_window:,}",
            f"{entry.max_output_tokens:,}",
            thinking_of(entry),
            "yes" if "image" in entry.accepted_block_types else "no",
            str(entry.max_tools) if entry.max_tools else "any",
            ", ".join(served.get(name, [])) or "-",
        )
        for name, entry in [*policy_entries.items(), ("(defaults)", defaults)]
    ]


def render(table: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    return "".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n"
        for row in [COLUMNS, *table]
    )


def main(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(str(args.policy))
        config = load_litellm_config(args.litellm_config, environ=EveryVariableSet())
    except ConfigError as e:
        print(f"stabilizer: {e}", file=sys.stderr)
        return 1
    served: dict[str, list[str]] = {}
    for name, route in routes_of(config["model_list"]).items():
        key = policy.key_for(name, route.model_id)
        served.setdefault(key if key in policy.models else "(defaults)", []).append(f"{name} ({route.kind})")
    print(render(rows(policy.models, policy.defaults, served)), end="")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=main)
