import pytest

from tests.conftest import POLICY
from tests.procs import StabilizerRun


@pytest.fixture(scope="module")
def stack_run(request, tmp_path_factory, litellm_config, child_env):
    """`stabilizer run` with the shipped policy, one for each test module that does not start its own."""
    folder = tmp_path_factory.mktemp(f"stabilizer-{request.module.__name__.rpartition('.')[2]}")
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=POLICY, env=child_env).start()
    yield run
    run.stop()
