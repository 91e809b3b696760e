"""llama-server on a model of tests/llama/model.py, and a LiteLLM config with both of its routes.

The binary comes from `make llama-server` (tests/llama/build.py); a test that finds none fails,
naming the target, rather than skipping: on a machine that can build it, the tests run.
"""

import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import yaml

from litellm_service.cli import stop
from tests.llama.build import server_binary
from tests.procs import free_port, get_json, poll_until

# The names the LiteLLM config gives llama-server's two routes, and the model id behind both.
OPENAI_ROUTE = "llamacpp-openai"
ANTHROPIC_ROUTE = "llamacpp-anthropic"
MODEL_ID = "bigram"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LlamaServer:
    """llama-server on 127.0.0.1, one slot, `context` tokens of window."""

    def __init__(self, model: Path, log_file: Path, context: int, extra_args: tuple[str, ...] = ()):
        binary = server_binary()
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: `make llama-server` builds it (tests/llama/build.py)")
        self.port = free_port()
        self.log_file = log_file
        self.command = [
            str(binary),
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ctx-size",
            str(context),
            # One slot holds the whole window (with more, -c is split between them).
            "--parallel",
            "1",
            # The machine is shared: one thread is plenty for a one-layer model.
            "--threads",
            "1",
            "--jinja",
            *extra_args,
        ]
        self.process: subprocess.Popen | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LlamaServer":
        self._log = open(self.log_file, "wb")
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}; log: {self.log_file}")
            try:
                return get_json(self.url + "/health")[0] == 200
            except OSError:
                return False

        poll_until(healthy, 30, "llama-server's /health")
        return self

    def stop(self) -> None:
        stop(self.process)
        if self._log is not None:
            self._log.close()


# The llama.cpp entry of config/stabilizer.yaml, for the model behind both routes (tests/addons/
# test_thinking.py holds the two the same): Qwen's template reads `enable_thinking` from
# chat_template_kwargs, which LiteLLM passes on the OpenAI-compatible route only; Anthropic's
# `thinking` llama-server takes as no switch, so a turn that asks thinking off on the
# Anthropic-compatible route goes to the OpenAI-compatible one (measured with llama-cpp-python
# 0.3.36's llama.cpp, commit 1652066, and LiteLLM 1.108.14).
LLAMA_ENTRY = {
    "thinking": {
        "enable": {"chat_template_kwargs": {"enable_thinking": True}},
        "disable": {"chat_template_kwargs": {"enable_thinking": False}},
        "anthropic_switch": "none",
    },
    "thinking_off_model": OPENAI_ROUTE,
}


def write_policy(path: Path) -> Path:
    """The shipped policy with an entry for the model: llama-server's thinking switch. No window:
    the default's is larger than -c, so llama-server's own refusal is what comes back."""
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "stabilizer.yaml").read_text())
    shipped["models"][MODEL_ID] = LLAMA_ENTRY
    path.write_text(yaml.safe_dump(shipped))
    return path


def serve(started: ExitStack, model: Path, context: int) -> LlamaServer:
    """llama-server on `model` with a window of `context`, its log beside the model, stopped
    when `started` closes (also when a process started after it fails to start)."""
    server = LlamaServer(model, model.parent / "llama-server.log", context)
    started.callback(server.stop)
    return server.start()


def write_litellm_config(path: Path, server_url: str) -> Path:
    """The shipped config's settings, with llama-server on both routes, as config/litellm.yaml's
    commented local-server entries have them."""
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "litellm.yaml").read_text())
    shipped["model_list"] = [
        {
            "model_name": OPENAI_ROUTE,
            "litellm_params": {"model": f"openai/{MODEL_ID}", "api_base": f"{server_url}/v1", "api_key": "none"},
        },
        {
            "model_name": ANTHROPIC_ROUTE,
            "litellm_params": {"model": f"anthropic/{MODEL_ID}", "api_base": server_url, "api_key": "none"},
            "model_info": {"supports_output_config": True},
        },
    ]
    path.write_text(yaml.safe_dump(shipped))
    return path
