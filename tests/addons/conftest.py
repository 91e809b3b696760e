"""Fixtures of the in-process addon tests that more than one file uses."""

import pytest
from mitmproxy.addons.view import View
from mitmproxy.test import taddons

from tests.addons.view_bundle import MASTER, Bundle
from tests.conftest import POLICY


@pytest.fixture
def bundle(monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    bundle = Bundle()
    with taddons.context(View(), *bundle.chain) as tctx:
        tctx.configure(bundle.shaper, stabilizer_policy=str(POLICY))
        yield bundle
