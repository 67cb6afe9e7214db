"""Errors that reach the user as one clear line and exit code 2."""


class InputError(Exception):
    """Bad input from the user: a missing path, an unreadable patch, an unknown rule code."""
