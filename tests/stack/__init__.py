"""Tier 3, real processes: real mitmdump and/or LiteLLM (and shells, the CLI, chromium) against
the stand-in providers of tests/backend/."""
