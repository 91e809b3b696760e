"""The `stabilizer` command (cli.py) and what it starts: LiteLLM on a loopback port the OS chooses
(server.py), mitmdump with the addons in front of it (stack.py), the two as services (service.py), and
the keys, aliases, profiles and checks around them."""
