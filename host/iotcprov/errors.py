"""Errors the CLI turns into one line on stderr and an exit code.

Messages name the field and the fix, and never contain a secret.
"""


class IotcprovError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""

    exit_code = 1


class InputError(IotcprovError):
    """Bad input (an option, a file, a port): exit code 2, nothing written."""

    exit_code = 2


class OperationError(IotcprovError):
    """A well-formed request that failed while running (board, network, service): exit code 1."""

    exit_code = 1
