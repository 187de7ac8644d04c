"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, env id, checkpoint, ...). The message says what is wrong and what is valid."""


class ConfigError(UserError):
    """A config file or override that cannot be turned into a valid config."""


def exit_code(command) -> int:
    """Run ``command()`` for a command-line entry point: a UserError becomes one ``error:`` line and
    exit code 2, Ctrl-C exit code 130, success 0 — never a traceback for the user's own mistakes."""
    import sys

    try:
        command()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
