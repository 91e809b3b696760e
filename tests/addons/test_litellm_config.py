"""addons/config/litellm_config.py in the addons: one reader of LiteLLM's config, whose problem stops
an addon's start-up with the message `stabilizer run` gives, as mitmproxy's OptionsError.

What the reader checks and resolves: tests/pure/test_litellm_config.py.
"""

import pytest
from mitmproxy.test import taddons

from addons.request_shaper import RequestShaper


def test_the_front_door_and_the_shaper_refuse_a_config_that_is_not_utf8_alike(tmp_path, monkeypatch):
    """One reader of LiteLLM's config: the same message as `stabilizer run` gives, as mitmproxy's OptionsError."""
    from mitmproxy import exceptions

    from addons.master_key_auth import MasterKeyAuth
    from addons.request_shaper import RequestShaper

    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-right")  # as the stack runs: no "no master key" warning
    config = tmp_path / "litellm.yaml"
    config.write_bytes("model_list:\n  - model_name: café\n".encode("latin-1"))
    message = f"{config}: not UTF-8 (byte 31: invalid continuation byte). Fix: save it as UTF-8"
    for addon in (MasterKeyAuth(), RequestShaper()):
        with taddons.context(addon) as tctx:
            if not hasattr(tctx.options, "stabilizer_litellm_config"):  # RequestShaper declares it
                tctx.options.add_option("stabilizer_litellm_config", str, "", "")
            with pytest.raises(exceptions.OptionsError) as caught:
                tctx.configure(addon, stabilizer_litellm_config=str(config))
        assert str(caught.value) == message, addon


def test_a_broken_litellm_config_stops_start_up(tmp_path):
    from mitmproxy import exceptions

    addon = RequestShaper()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match="missing.yaml: file not found"):
        tctx.configure(addon, stabilizer_litellm_config=str(tmp_path / "missing.yaml"))
