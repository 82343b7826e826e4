"""The base class of every error sslmon raises for bad input, so that callers can catch them all.

Each subclass's message is one line naming the file or value and the problem (``FILE: problem``).
"""


class SslmonError(Exception):
    """An input sslmon cannot use: a checkpoint, dataset, embedding file, option file, output or results file."""
