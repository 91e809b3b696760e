"""Tier 2, in process: the addons driven by mitmproxy's taddons/tflow, or an in-process
mitmproxy master or socket. No subprocess (tests/conftest.py fails a test here that starts one)."""
