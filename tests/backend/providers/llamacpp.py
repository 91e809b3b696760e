"""llama.cpp's llama-server (`llamacpp-*`): a local server running a reasoning model behind a
reasoning parser: reasoning_content; `exceed_context_size_error` past n_ctx
(llama.cpp tools/server/README.md, third-party captures; read 2026-11-26). Its window is -c
(from the model): set context_window in a test."""

from __future__ import annotations

from tests.backend.core import Error
from tests.backend.provider import Provider


def _context_error(window: int, prompt: int, completion: int) -> Error:
    """As captured by third parties quoting tools/server/server-context.cpp (not checked in
    source), read 2026-11-26: "request (N tokens) exceeds the available context size"."""
    return Error(
        400,
        {
            "error": {
                "code": 400,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": window,
                "message": f"request ({prompt} tokens) exceeds the available context size ({window} tokens), "
                "try increasing it",
            }
        },
    )


PROVIDER = Provider(
    name="llamacpp",
    prefix="llamacpp-",
    profile={"thinking": True},
    window_counts_completion=False,
    context_error=_context_error,
    # llama-server's switch is a server flag (`--reasoning off`): use the `thinking` quirk.
    thinking_off=lambda body: False,
)
