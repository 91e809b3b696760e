"""A mitmproxy script for the benchmark's reference (b'): stock mitmdump that streams event streams.

Stock mitmdump buffers a response and sends it in one write; the bundle must
pass every event of Claude Code's answer on as it comes (it never buffers an
event stream). This script does that and nothing else, so the throughput of
(b') against (b) is what streaming costs in mitmproxy itself, and (c) against
(b') what the addons cost on top of it.
"""


class StreamEventStreams:
    def responseheaders(self, flow):
        if "text/event-stream" in flow.response.headers.get("content-type", ""):
            flow.response.stream = True


addons = [StreamEventStreams()]
