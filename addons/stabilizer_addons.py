"""Entry file for `mitmdump -s addons/stabilizer_addons.py`: the whole bundle, in order.

ProxyErrorAnswers turns mitmproxy's own error answers into Anthropic ones,
MasterKeyAuth refuses callers without the master key, Upstream decides where a
request goes (or answers it while LiteLLM is away), RequestShaper makes the
request acceptable to the model, ResponsePatcher makes the answer parseable by
Claude Code.
"""

from addons.auth import MasterKeyAuth
from addons.request_addon import RequestShaper
from addons.response_addon import ResponsePatcher
from addons.proxy_errors import ProxyErrorAnswers
from addons.upstream import Upstream

addons = [ProxyErrorAnswers(), MasterKeyAuth(), Upstream(), RequestShaper(), ResponsePatcher()]
