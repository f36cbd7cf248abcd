"""The one exception type for user-facing mistakes (the CLI prints its message, never a traceback), and how
messages and rendered text count things, shared by every layer that words one."""


class OpgraphError(ValueError):
    """Bad input from the user: a name, a shape, a file or a parameter. The message says which and what is valid."""


def noun(n: float, word: str, plural: str = "") -> str:
    """`word` as `n` of it reads (a count or a rate): singular for one, else `plural` (default: word + "s"); a verb
    agrees the same way, its singular given first.

    >>> noun(1, "key"), noun(2, "key"), noun(3, "micro-batch", "micro-batches"), noun(1, "is", "are")
    ('key', 'keys', 'micro-batches', 'is')
    """
    return word if n == 1 else plural or f"{word}s"


def counted(n: int, word: str, plural: str = "") -> str:
    """A count and its noun, plural unless one: 1 replica, 8 requests, 1,024 requests.

    >>> counted(1, "replica"), counted(1024, "request"), counted(2, "batch", "batches")
    ('1 replica', '1,024 requests', '2 batches')
    """
    return f"{n:,} {noun(n, word, plural)}"
