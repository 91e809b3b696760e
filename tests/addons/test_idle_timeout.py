"""addons/idle_timeout.py: a LiteLLM that sends nothing for the idle limit loses its connection.

Through a real mitmproxy in this process (tests/addons/in_process.py). Through the real
stack (a LiteLLM that trickles, one that stalls, the option refused): tests/stack/test_reliability.py.
"""

import threading

from addons.idle_timeout import UpstreamIdleTimeout
from addons.proxy_errors import ProxyErrorAnswers
from tests.addons.in_process import TIMEOUT, InProcessProxy, ScriptedUpstream, anthropic_error, post, read_answer


def test_a_silent_upstream_connection_is_closed_after_the_idle_limit():
    stays_silent = threading.Event()
    upstream = ScriptedUpstream(lambda connection: stays_silent.wait(TIMEOUT))
    with (
        InProcessProxy(
            upstream.port, ProxyErrorAnswers(), UpstreamIdleTimeout(), stabilizer_upstream_idle_timeout=1
        ) as proxy,
        proxy.connect() as client,
    ):
        client.sendall(post())
        response, body = read_answer(client)  # within TIMEOUT: the upstream would answer nothing before it
    stays_silent.set()
    assert response.status == 503 and anthropic_error(response, body)["type"] == "overloaded_error"
