"""Session fixtures: the stand-in backend, the real LiteLLM proxy and the real mitmdump with the addons;
and the guard that keeps the fast tiers free of processes.

The tests come in tiers, one folder each, slowest last: pure/ (plain functions), addons/ (in
process: mitmproxy's taddons/tflow, an in-process master), stack/ (real mitmdump, LiteLLM and
other processes) and e2e/ (the real Claude Code CLI). `make check` runs the first two, so a test
there that starts a process fails at once, saying where it belongs.

LiteLLM takes about 10 s to start, so one instance serves the whole session;
tests that kill it restart it through the same object, and mitmdump follows
its log to the new port just as it does in production.
"""

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.backend import Backend
from tests.procs import LiteLLM, Mitmdump, child_environment

TESTS = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS.parent
# The tiers `make check` runs: a subprocess there is a test in the wrong folder.
IN_PROCESS_TIERS = (TESTS / "pure", TESTS / "addons")
POLICY = PROJECT_ROOT / "config" / "stabilizer.yaml"
# Model names served through the stand-in's OpenAI-compatible route (LiteLLM's openai/
# provider); the stand-in picks the provider's behaviour by the name's prefix (tests/backend/).
BACKEND_MODELS = (
    "deepseek-flash",
    "deepseek-v4-pro",
    "qwen-plus",
    "plain-model",
    "qwen3.8-max",
    "kimi-k3",
    "glm-5.3",
    "vllm-qwen3-coder",
    "ollama-qwen3-coder",
    "llamacpp-local",
    "gpt-4.1",  # OpenAI's own model: its rule for tool-call ids (tests/backend/providers/openai.py)
)
# Other names for a model on the OpenAI-compatible route: name -> model id.
OPENAI_ROUTE_MODELS = {
    "minimax-m3-openai": "MiniMax-M3",
    # A local server with a small window that sends what is over it to DeepSeek (CONTEXT_WINDOW_FALLBACKS).
    "llamacpp-to-deepseek": "llamacpp-local",
}
# Model names served through the stand-in's Anthropic-compatible route (LiteLLM's anthropic/
# provider, or minimax/ as config/litellm.yaml has it), as a user names a second route to the
# same provider model: name -> (LiteLLM provider, model id).
ANTHROPIC_ROUTE_MODELS = {
    "deepseek-flash-anthropic": ("anthropic", "deepseek-flash"),
    "qwen3.7-plus-anthropic": ("anthropic", "qwen3.7-plus"),
    "kimi-k2.6-anthropic": ("anthropic", "kimi-k2.6"),
    "glm-5.3-flash-anthropic": ("anthropic", "glm-5.3-flash"),
    "MiniMax-M3": ("minimax", "MiniMax-M3"),
    "vllm-qwen3-coder-anthropic": ("anthropic", "vllm-qwen3-coder"),
    "ollama-qwen3-coder-anthropic": ("anthropic", "ollama-qwen3-coder"),
    "llamacpp-local-anthropic": ("anthropic", "llamacpp-local"),
    # Anthropic's own models behind the same LiteLLM: they verify thinking signatures.
    "claude-sonnet-anthropic": ("anthropic", "claude-sonnet-4-6"),
    "claude-opus-anthropic": ("anthropic", "claude-opus-4-7"),  # falls back to DeepSeek (FALLBACKS)
    "deepseek-pro-anthropic": ("anthropic", "deepseek-v4-pro"),  # falls back to Claude (FALLBACKS)
    "deepseek-flash-to-qwen": ("anthropic", "deepseek-flash"),  # falls back to Qwen 3.7 (FALLBACKS)
}
# LiteLLM's router_settings.fallbacks of the test config: model name -> the names tried after it.
FALLBACKS = {
    "claude-opus-anthropic": ["deepseek-flash-anthropic"],
    "deepseek-pro-anthropic": ["claude-sonnet-anthropic"],
    "deepseek-flash-to-qwen": ["qwen3.7-plus-anthropic"],
}
# And its router_settings.context_window_fallbacks: where a request over the model's window goes.
CONTEXT_WINDOW_FALLBACKS = {"llamacpp-to-deepseek": ["deepseek-flash"]}


def write_litellm_config(path: Path, backend_url: str) -> Path:
    """The shipped config's settings, with models pointed at the stand-in backend."""
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "litellm.yaml").read_text())
    # LiteLLM's anthropic/ provider appends /v1/messages to its api_base.
    routes = [(name, f"openai/{name}", backend_url) for name in BACKEND_MODELS]
    routes += [(name, f"openai/{model_id}", backend_url) for name, model_id in OPENAI_ROUTE_MODELS.items()]
    routes += [
        (name, f"{provider}/{model_id}", backend_url.removesuffix("/v1"))
        for name, (provider, model_id) in ANTHROPIC_ROUTE_MODELS.items()
    ]
    shipped["model_list"] += [
        {
            "model_name": name,
            "litellm_params": {"model": model, "api_base": base, "api_key": "os.environ/FAKE_PROVIDER_KEY"},
            # As config/litellm.yaml's Anthropic-route entries: or LiteLLM drops output_config.effort.
            **({"model_info": {"supports_output_config": True}} if model.startswith("anthropic/") else {}),
        }
        for name, model, base in routes
    ]
    router = shipped.setdefault("router_settings", {})
    router["fallbacks"] = [{name: names} for name, names in FALLBACKS.items()]
    router["context_window_fallbacks"] = [{name: names} for name, names in CONTEXT_WINDOW_FALLBACKS.items()]
    path.write_text(yaml.safe_dump(shipped))
    return path


@contextmanager
def processes_refused(item: pytest.Item) -> Iterator[None]:
    """Fails the test of an in-process tier that starts a process (or a fixture that does)."""
    if not any(item.path.is_relative_to(tier) for tier in IN_PROCESS_TIERS):
        yield
        return

    def refuse(*args, **kwargs):
        # pytest.fail raises past `except Exception`, so no caller swallows it.
        pytest.fail(f"{item.nodeid} starts a process: its place is tests/stack/ (tests/conftest.py)", pytrace=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse)
        yield


# The files that take longest, in seconds of a serial run on 2 cores (2026-12-06): with workers
# (`make test` runs pytest-xdist, a file to a worker) they start first, so that the run does not
# end on one of them while the other workers are idle.
SLOWEST_FILES = (
    "stack/test_reliability.py",  # 154 s
    "stack/test_long_session.py",  # 67 s
    "e2e/test_providers.py",  # 47 s
    "e2e/test_many_models.py",  # 40 s
    "stack/test_front_door.py",  # 39 s
    "stack/test_doctor.py",  # 34 s
    "stack/test_stack.py",  # 32 s
    "e2e/test_llama_claude.py",  # 30 s
    "e2e/test_auto_mode.py",  # 29 s
    "stack/test_secrets.py",  # 27 s
    "e2e/test_compaction_after_trim.py",  # 26 s
    "pure/test_fuzz_transforms.py",  # 24 s
)


def schedule_rank(item: pytest.Item) -> tuple[int, bool]:
    """The slowest files first, then the others with processes, the in-process tiers last: their
    many short files fill the workers' ends."""
    path = item.path.relative_to(TESTS).as_posix()
    slow = SLOWEST_FILES.index(path) if path in SLOWEST_FILES else len(SLOWEST_FILES)
    return slow, any(item.path.is_relative_to(tier) for tier in IN_PROCESS_TIERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only in a worker: a run without them keeps the folders' order, the quick tiers first.
    # xdist hands out files in the order its workers collected them (with --no-loadscope-reorder).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=schedule_rank)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with processes_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with processes_refused(item):
        return (yield)


@pytest.fixture(scope="session")
def master_key() -> str:
    return "sk-test-master-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def provider_key() -> str:
    return "sk-fake-provider-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def child_env(session_home, master_key, provider_key) -> dict[str, str]:
    env = child_environment(session_home, master_key)
    env["FAKE_PROVIDER_KEY"] = provider_key
    return env


@pytest.fixture(scope="session")
def backend():
    server = Backend().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_backend(backend):
    """The session backend with nothing received, scripted or overridden."""
    backend.reset()
    yield backend
    backend.reset()


@pytest.fixture(scope="session")
def litellm_config(tmp_path_factory, backend) -> Path:
    return write_litellm_config(tmp_path_factory.mktemp("config") / "litellm.yaml", backend.base_url)


@pytest.fixture(scope="session")
def litellm(litellm_config, session_home, child_env):
    process = LiteLLM(litellm_config, session_home / "logs" / "litellm.log", child_env).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def proxy(litellm, child_env):
    """mitmdump with the addons in front of the session LiteLLM."""
    process = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=litellm.config).start()
    yield process
    process.stop()


@pytest.fixture
def stack(proxy, litellm):
    """The proxy routed to a live LiteLLM (restarted if an earlier test killed it)."""
    if litellm.process.poll() is not None:
        litellm.start()
    proxy.wait_upstream(litellm.url)
    return proxy


@pytest.fixture
def own_proxy(litellm, child_env):
    """A mitmdump of the test's own in front of the session LiteLLM (what it learns stays with
    it), the addons' INFO lines in its output (self.log)."""
    process = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=litellm.config)
    process.start(quiet=False)
    process.wait_upstream(litellm.url, timeout=30)
    yield process
    process.stop()


@pytest.fixture
def lone_proxy(tmp_path, child_env):
    """A second mitmdump with the addons, following a log file the test writes itself."""
    log = tmp_path / "litellm.log"
    proxy = Mitmdump(log, None, child_env).start()
    yield proxy, log
    proxy.stop()


@pytest.fixture
def anthropic_client(stack, master_key):
    import anthropic

    return anthropic.Anthropic(base_url=stack.url, api_key=master_key, max_retries=0, timeout=60)
