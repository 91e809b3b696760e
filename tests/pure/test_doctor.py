"""`stabilizer doctor`'s LiteLLM check: the installed release against the newest security fix known here."""

from importlib import metadata

import pytest

from litellm_service import doctor


@pytest.mark.parametrize(
    "version",
    ["1.106.12", "1.108.13", "1.108.14", "1.109.3", "1.110.2", "1.111.0"],
)
def test_a_release_with_the_fix_is_ok_and_named(version):
    result = doctor.check_litellm_version(version)
    assert result.ok and result.what == "litellm" and result.detail.startswith(f"{version},")


@pytest.mark.parametrize(
    "version",
    # 1.108.7 was pinned before; 1.107 and 1.109.0-1.109.2 come after 1.106.12 but have no backport.
    ["1.108.7", "1.108.12", "1.107.4", "1.109.2", "1.110.1", "1.105.0", "1.83.14"],
)
def test_a_release_without_the_fix_is_a_problem_that_says_which_fix(version):
    result = doctor.check_litellm_version(version)
    assert not result.ok
    assert version in result.detail and "/key/info" in result.detail and "1.108.13" in result.detail
    assert result.fix.startswith("make install")


def test_the_pinned_litellm_has_the_newest_fix_known_here():
    assert doctor.installed_litellm().ok, doctor.installed_litellm().line()
    assert doctor.installed_litellm().detail.startswith(metadata.version("litellm"))
