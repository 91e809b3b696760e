"""stabilizer's mitmproxy addons and the pure transforms they call."""

__version__ = "0.1.0"

# Answered by the Upstream addon itself; read by `stabilizer run` and `stabilizer doctor`.
STATUS_PATH = "/_stabilizer/status"
