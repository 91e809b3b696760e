"""No deprecated `add_log` events when no addon listens for them.

mitmproxy turns every log record into an `add_log` event for addons written
before mitmproxy 9 (LegacyLogEvents in mitmproxy/log.py): a call scheduled on
the event loop, which then asks each of the ~50 loaded addons whether it has
an `add_log` method. The bundle logs a line or two per request it changes;
with py-spy on the 76 KB Claude Code request, that dispatch took 0.11 ms of CPU
per request, more than writing the lines. No addon of mitmproxy's or of ours
has `add_log` (mitmweb's event log reads records with a handler of its own),
so once everything is loaded and still none has one, the handler comes off.
Log lines themselves are unchanged: terminal, log file and mitmweb show them.
"""

import logging

from mitmproxy import ctx
from mitmproxy.addonmanager import traverse

logger = logging.getLogger(__name__)


class LegacyLogEventsOff:
    def running(self):
        if any(hasattr(addon, "add_log") for addon in traverse(ctx.master.addons.chain)):
            return
        if (handler := getattr(ctx.master, "_legacy_log_events", None)) is not None:
            handler.uninstall()
            logger.debug("no addon has add_log: mitmproxy's add_log events are off")
