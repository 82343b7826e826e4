"""Small text helpers shared by the modules that report errors."""


def one_line(exc: BaseException) -> str:
    """The exception's message collapsed onto one line (its type name when the message is empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__
