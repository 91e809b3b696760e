"""`python -m tests.backend`: the stand-in provider on its own (see tests/backend/__init__.py)."""

from tests.backend.server import main

main()
