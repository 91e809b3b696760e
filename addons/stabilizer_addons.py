"""Entry file for `mitmdump -s addons/stabilizer_addons.py`: the whole bundle, in order.

JsonErrorPages turns mitmproxy's own error pages into Anthropic JSON,
MasterKeyAuth refuses callers without the master key, Upstream decides where a
request goes (or answers it while LiteLLM is away), RequestShaper makes the
request acceptable to the model, ResponsePatcher makes the answer parseable by
Claude Code.
"""

from addons.auth import MasterKeyAuth
from addons.request_addon import RequestShaper
from addons.response_addon import ResponsePatcher
from addons.upstream import JsonErrorPages, Upstream

addons = [JsonErrorPages(), MasterKeyAuth(), Upstream(), RequestShaper(), ResponsePatcher()]
