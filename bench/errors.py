"""Errors the CLI turns into exit codes: BadInput -> 2, RunFailed -> 1."""


class BadInput(ValueError):
    """The user asked for something that cannot be (exit code 2)."""


class RunFailed(RuntimeError):
    """Something outside the input failed mid-run, e.g. a server (exit code 1)."""
