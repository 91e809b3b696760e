"""Tier 4, end to end: the real Claude Code CLI (`make claude-code`) through the whole stack."""
