"""Entry file for `mitmdump -s addons/stabilizer_addons.py`: the whole bundle, in order.

Upstream decides where a request goes (or answers it when LiteLLM is away),
RequestShaper makes it acceptable to the model, ResponsePatcher makes the
answer parseable by Claude Code.
"""

from addons.request_addon import RequestShaper
from addons.response_addon import ResponsePatcher
from addons.upstream import JsonErrorPages, Upstream

addons = [JsonErrorPages(), Upstream(), RequestShaper(), ResponsePatcher()]
