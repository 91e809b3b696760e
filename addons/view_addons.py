"""Entry file for `mitmweb -r FILE -s addons/view_addons.py`: a recording (`stabilizer run
--record FILE`) with the stabilizer view and the filter words in each flow's comment.

Only FlowMarker: mitmweb runs every loaded flow through the addons' hooks, and
ResponsePatcher would change the recorded answers (a whole JSON answer to a
streaming request made events, for one); the request addons leave a flow that
already has its response alone.
"""

from addons.inspection import FlowMarker

addons = [FlowMarker()]
