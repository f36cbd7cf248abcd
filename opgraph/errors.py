"""The one exception type for user-facing mistakes: the CLI prints its message, never a traceback."""


class OpgraphError(ValueError):
    """Bad input from the user: a name, a shape, a file or a parameter. The message says which and what is valid."""
