"""The base class of every error sslmon raises for bad input, so that callers can catch them all.

Each subclass's message is one line naming the file or value and the problem (``FILE: problem``). Messages speak of
the Python parameters (``k``, ``trust_checkpoints``); ``param`` names the one to change, and the command line maps it
to its flag (``--k``) in one table (``sslmon.cli.FLAGS``).
"""

from __future__ import annotations


class SslmonError(Exception):
    """An input sslmon cannot use: a checkpoint, dataset, embedding file, option, output or results file.

    ``param``: the parameter (an :class:`sslmon.api.Options` field) whose value would fix it, when there is one."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class OptionsError(SslmonError, ValueError):
    """An option value that cannot be used (unknown metric, bad seed list, k missing without labels, ...)."""
