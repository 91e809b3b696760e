"""addons/legacy_log_events.py: mitmproxy's deprecated add_log events stop when no addon takes them.

In a running master too: a real mitmproxy in this process (tests/addons/in_process.py).
"""

import logging

from mitmproxy import log
from mitmproxy.test import taddons

from addons.legacy_log_events import LegacyLogEventsOff
from tests.addons.in_process import InProcessProxy
from tests.procs import free_port


def legacy_handlers(master) -> list[logging.Handler]:
    """The handler that turns the master's log records into add_log events, if it is on."""
    return [h for h in logging.getLogger().handlers if isinstance(h, log.LegacyLogEvents) and h.master is master]


def test_the_add_log_events_stop_when_no_addon_takes_them():
    addon = LegacyLogEventsOff()
    with taddons.context(addon) as tctx:
        assert len(legacy_handlers(tctx.master)) == 1  # mitmproxy installs it
        addon.running()
        assert legacy_handlers(tctx.master) == []


def test_done_puts_them_back():
    addon = LegacyLogEventsOff()
    with taddons.context(addon) as tctx:
        handlers = legacy_handlers(tctx.master)
        addon.running()
        addon.done()
        assert legacy_handlers(tctx.master) == handlers


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
        assert len(legacy_handlers(tctx.master)) == 1
        addon.done()  # nothing taken off, nothing put back
        assert len(legacy_handlers(tctx.master)) == 1


def test_a_running_master_has_no_add_log_events():
    with InProcessProxy(free_port(), LegacyLogEventsOff()) as proxy:
        assert legacy_handlers(proxy.master) == []
