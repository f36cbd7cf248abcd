"""The one exception type for user-facing mistakes (the CLI prints its message, never a traceback), and how
messages and rendered text count things, shared by every layer that words one."""


class OpgraphError(ValueError):
    """Bad input from the user: a name, a shape, a file or a parameter. The message says which and what is valid."""


def counted(n: int, noun: str) -> str:
    """A count and its noun, plural unless one: 1 replica, 8 requests, 1,024 requests.

    >>> counted(1, "replica"), counted(1024, "request")
    ('1 replica', '1,024 requests')
    """
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
