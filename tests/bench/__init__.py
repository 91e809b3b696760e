"""`make bench` (python -m tests.bench): what the bundle costs on the way, measured side by side."""
