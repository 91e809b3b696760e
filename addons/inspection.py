"""For watching the addons at work in mitmweb (`stabilizer run --web`).

FlowMarker marks every flow the addons changed and writes what they changed
(flow.metadata["stabilizer"]["changes"]) into its comment, which mitmweb shows
in the flow list (the "comment" column) and in the flow's details. mitmproxy
calls `response` for a streamed response only after the stream has ended, so
the notes of the stream patcher are in by then. (For a stream the upstream
cut, the `error` hook comes before ProxyErrorAnswers closes the stream: the
comment lacks that last note.)

FlowCap keeps mitmweb's memory bounded: mitmweb keeps every flow and has no
option to stop, so beyond `stabilizer_max_flows` the oldest finished flows are
removed from its view. mitmdump keeps no flows (it has no view): there the cap
does nothing.
"""

import logging

from mitmproxy import ctx, exceptions, http

logger = logging.getLogger(__name__)

# Shown as a wrench in mitmweb's flow list (a marker from mitmproxy.utils.emoji).
CHANGED_MARKER = ":wrench:"
DEFAULT_MAX_FLOWS = 1000


def changes_comment(flow: http.HTTPFlow) -> str:
    """The addons' changes to this flow as one line; empty when there were none."""
    notes = flow.metadata.get("stabilizer")
    changes = notes.get("changes") if isinstance(notes, dict) else None
    return "; ".join(str(change) for change in changes) if isinstance(changes, list) else ""


class FlowMarker:
    def response(self, flow: http.HTTPFlow) -> None:
        self._mark(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._mark(flow)

    @staticmethod
    def _mark(flow: http.HTTPFlow) -> None:
        if comment := changes_comment(flow):
            flow.comment = comment
            flow.marked = CHANGED_MARKER


class FlowCap:
    def load(self, loader):
        loader.add_option(
            "stabilizer_max_flows", int, DEFAULT_MAX_FLOWS,
            "The most flows mitmweb keeps; beyond it the oldest finished ones are dropped. 0: no cap.",
        )

    def configure(self, updated):
        if "stabilizer_max_flows" not in updated:
            return
        if ctx.options.stabilizer_max_flows < 0:
            raise exceptions.OptionsError("stabilizer_max_flows must be 0 (no cap) or more")
        self._enforce()

    def response(self, flow: http.HTTPFlow) -> None:
        self._enforce()

    def error(self, flow: http.HTTPFlow) -> None:
        self._enforce()

    @staticmethod
    def _enforce() -> None:
        view = ctx.master.addons.get("view")
        cap = ctx.options.stabilizer_max_flows
        if view is None or not cap:
            return
        excess = view.store_count() - cap
        if excess <= 0:
            return
        # Oldest first (the store keeps arrival order); a live flow is never cut off.
        oldest = [flow for flow in view.resolve("@all") if not flow.live][:excess]
        view.remove(oldest)
        logger.debug("flow cap %d: dropped %d flows", cap, len(oldest))
