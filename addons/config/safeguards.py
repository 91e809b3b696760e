"""The LiteLLM config `stabilizer run` starts LiteLLM with: the user's, set up to answer auto mode.

LiteLLM 1.108.7 answers Claude Code's `safeguards` (auto mode's verdicts on each
tool call) when `general_settings.safeguards_classifier_model` names a model of
its config (addons/safeguards.py says how the stack takes part). Unless the
user's config names one itself, the classifier is CLASSIFIER_ENTRY, an entry
added here whose api_base is the stack's own front door: its call comes back
through the addons, which choose the model that judges and shape the call like
any turn. Every entry also drops `safeguards` before its backend: on the
Anthropic-compatible route LiteLLM would pass it on, and the request addon keeps
it for LiteLLM only.
"""

import copy
from typing import Any

from addons.flow.kind import SAFEGUARDS_PREFIX

CLASSIFIER_SETTING = "safeguards_classifier_model"
CLASSIFIER_ENTRY = "stabilizer-safeguards"


def with_safeguards(config: dict[str, Any], front_door: str) -> dict[str, Any]:
    """`config` (checked by load_litellm_config) with auto mode answered, its classifier call sent
    to `front_door` (the stack's URL) unless the config names a classifier model itself."""
    derived = copy.deepcopy(config)
    for entry in derived["model_list"]:
        params = entry["litellm_params"]
        dropped = params.get("additional_drop_params") or []
        if "safeguards" not in dropped:
            params["additional_drop_params"] = [*dropped, "safeguards"]
    general = derived["general_settings"]
    if not general.get(CLASSIFIER_SETTING):
        derived["model_list"].append(
            {
                "model_name": CLASSIFIER_ENTRY,
                "litellm_params": {
                    "model": f"anthropic/{CLASSIFIER_ENTRY}",
                    "api_base": front_door.rstrip("/") + SAFEGUARDS_PREFIX,
                    # The front door takes the master key LiteLLM itself checks, written as the config writes it.
                    "api_key": general["master_key"],
                },
            }
        )
        general[CLASSIFIER_SETTING] = CLASSIFIER_ENTRY
    return derived
