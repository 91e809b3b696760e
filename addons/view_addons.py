"""Entry file for `mitmweb -r FILE -s addons/view_addons.py`: a recording (`stabilizer run
--record FILE`) with the stabilizer view and the filter words in each flow's comment.

Only FlowMarker: mitmweb runs every loaded flow through the addons' hooks, and the
shaping and patching addons would change the recorded originals.
"""

from addons.inspection import FlowMarker

addons = [FlowMarker()]
