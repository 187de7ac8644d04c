"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, env id, checkpoint, ...). The message says what is wrong and what is valid."""


class ConfigError(UserError):
    """A config file or override that cannot be turned into a valid config."""
