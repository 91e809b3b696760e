"""No deprecated `add_log` events when no addon listens for them.

mitmproxy turns every log record into an `add_log` event for addons written
before mitmproxy 9 (LegacyLogEvents in mitmproxy/log.py): a call scheduled on
the event loop, which then asks each of the ~50 loaded addons whether it has
an `add_log` method. The bundle logs a line or two per request it changes,
and that dispatch costs more CPU than writing the lines (docs/benchmarks.md). No addon of mitmproxy's or of ours
has `add_log` (mitmweb's event log reads records with a handler of its own),
so once everything is loaded and still none has one, the handler comes off
(addons/flow/mitmproxy_internals.py: no option switches it off), and goes back on
when this addon is done.
Log lines themselves are unchanged: terminal, log file and mitmweb show them.
"""

import logging

from mitmproxy import ctx
from mitmproxy.addonmanager import traverse

from addons.flow import mitmproxy_internals

logger = logging.getLogger(__name__)


class LegacyLogEventsOff:
    def __init__(self) -> None:
        self.removed: logging.Handler | None = None

    def load(self, loader):
        mitmproxy_internals.check_version()

    def running(self):
        if any(hasattr(addon, "add_log") for addon in traverse(ctx.master.addons.chain)):
            return
        if (handler := mitmproxy_internals.legacy_log_events_off(ctx.master)) is not None:
            self.removed = handler
            logger.debug("no addon has add_log: mitmproxy's add_log events are off")

    def done(self):
        mitmproxy_internals.legacy_log_events_on(self.removed)
        self.removed = None
