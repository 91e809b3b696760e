"""Token counts with a real tokenizer that works offline.

LiteLLM ships the tiktoken encoding files inside its package
(litellm/litellm_core_utils/tokenizers); pointing TIKTOKEN_CACHE_DIR there
means tiktoken never downloads. We locate the folder without importing litellm
(that import costs seconds and pulls in the whole SDK).
"""

import functools
import importlib.util
import os

import tiktoken


def _bundled_encodings_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


@functools.cache
def _encoding() -> tiktoken.Encoding:
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (bundled := _bundled_encodings_dir()):
        os.environ["TIKTOKEN_CACHE_DIR"] = bundled
    return tiktoken.get_encoding("cl100k_base")


def count_text(text: str) -> int:
    """Tokens in `text` under cl100k_base (special-token strings count as text)."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))
