"""addons/legacy_log.py: mitmproxy's deprecated add_log events stop when no addon takes them."""

import logging

from mitmproxy import log
from mitmproxy.test import taddons

from addons.legacy_log import LegacyLogEventsOff


def legacy_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, log.LegacyLogEvents)]


def test_the_add_log_events_stop_when_no_addon_takes_them():
    addon = LegacyLogEventsOff()
    with taddons.context(addon) as tctx:
        assert tctx.master._legacy_log_events in legacy_handlers()  # mitmproxy installs it
        addon.running()
        assert tctx.master._legacy_log_events not in legacy_handlers()


class OldStyleAddon:
    def __init__(self):
        self.entries = []

    def add_log(self, entry):
        self.entries.append(entry)


def test_an_addon_that_takes_add_log_keeps_them():
    addon = LegacyLogEventsOff()
    old = OldStyleAddon()
    with taddons.context(addon, old) as tctx:
        addon.running()
        assert tctx.master._legacy_log_events in legacy_handlers()
