"""The one error type the toolkit raises for bad input.

The CLI prints ``str(error)`` as a single line and exits non-zero; library users can
catch :class:`LandscapeError` to tell bad input from bugs.
"""


class LandscapeError(Exception):
    """Bad input or an unusable setting: the message says what, where and what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
