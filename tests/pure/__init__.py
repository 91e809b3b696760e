"""Tier 1, pure: plain functions over plain data. No process, no socket, no mitmproxy master."""
