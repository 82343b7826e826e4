"""TensorBoard event files (``--tensorboard DIR`` of ``score``, ``compare``, ``watch`` and ``train``).

Each value goes in as the scalar ``sslmon/<key>`` at the step of its milestone's epoch (a result without an
epoch, such as an embedding file or a torchvision model, at its place in the run: 0, 1, ...), written by
``torch.utils.tensorboard.SummaryWriter`` into ``DIR/events.out.tfevents.*``, which ``tensorboard --logdir DIR``
shows. Needs the ``tensorboard`` package (``pip install 'sslmon[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from sslmon.errors import SslmonError

if TYPE_CHECKING:
    from sslmon.results import Result

TAG = "sslmon/{}"  # the scalar tag of a metric or loss key


class TensorBoardError(SslmonError):
    """The tensorboard package is missing or the log folder cannot be written; the message says which."""


class TensorBoardLog:
    """Scalars ``sslmon/<key>`` in the event files of ``logdir`` (created), flushed after each :meth:`add`."""

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TensorBoardError("--tensorboard needs the tensorboard package: pip install 'sslmon[tensorboard]'",
                                   param="tensorboard") from None
        if self.logdir.exists() and not self.logdir.is_dir():
            raise TensorBoardError(f"{self.logdir}: not a folder (--tensorboard names the folder of the event files)",
                                   param="tensorboard")
        try:
            self._writer = SummaryWriter(log_dir=str(self.logdir))
        except OSError as exc:
            raise TensorBoardError(f"{self.logdir}: cannot write ({(exc.strerror or type(exc).__name__).lower()})",
                                   param="tensorboard") from None
        self._steps = 0  # results written so far: the step of one without an epoch

    def add(self, step: int, values: Mapping[str, float | None]) -> None:
        """Each defined value as ``sslmon/<key>`` at ``step``."""
        for key, value in values.items():
            if value is not None:
                self._writer.add_scalar(TAG.format(key), float(value), global_step=step)
        self._writer.flush()

    def add_result(self, result: Result) -> None:
        """A result's defined metrics at its epoch (else at its place among the results written)."""
        self.add(result.epoch if result.epoch is not None else self._steps, result.metrics)
        self._steps += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(folder: str | Path | None) -> TensorBoardLog | None:
    """The log of ``folder`` (None when no folder is given); TensorBoardError at once for a missing package or a
    folder that cannot be written, before any work."""
    return None if folder is None else TensorBoardLog(folder)
