"""stabilizer's mitmproxy addons and the pure transforms they call."""

__version__ = "0.1.0"
