"""Start the LiteLLM proxy on a loopback port the OS chooses, and run the whole stack."""
