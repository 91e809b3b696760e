"""The one base class of the problems that stop a start: a config file, an option, a port, the env file."""


class ConfigError(Exception):
    """A configuration or start-up problem the user fixes. str() names the file (or the option or
    port), the key and the fix, one problem a line: the CLI prints it after `stabilizer: ` and exits
    non-zero without a traceback, and an addon's configure() raises it again as mitmproxy's OptionsError."""
