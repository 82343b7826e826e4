"""Property-based fuzzing (hypothesis) of the readers of untrusted files, shared by the fuzz tests in
test_models_encoders (checkpoints), test_io_inputs (embedding files) and test_io_datasets (idx, CIFAR pickle, image).
Each reader gets random bytes or a valid file with bytes overwritten and/or cut short; it must either succeed or raise
its module's own error (CheckpointError, InputError, DatasetError) with a one-line message naming the file: never
another exception. By default deterministic (the same 200 examples per reader on every run); SSLMON_FUZZ_EXAMPLES=N
runs N freshly random examples per reader instead (3,000 take about two minutes)."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
import pytest
from hypothesis import strategies as st

_LONG_RUN = os.environ.get("SSLMON_FUZZ_EXAMPLES")
_SETTINGS = settings(
    max_examples=int(_LONG_RUN or 200),
    deadline=None,
    derandomize=not _LONG_RUN,  # CI sees the same examples on every run: no flaky failures
    database=None,  # writes nothing into the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def FUZZ(test: Callable[..., None]) -> Callable[..., None]:  # noqa: N802 - used as a decorator, as it was a settings object
    """A fuzz test: the hypothesis settings above, marked slow (200 examples each; `make test-fast` leaves it out)."""
    return pytest.mark.slow(_SETTINGS(test))


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with up to 8 bytes overwritten (biased to the first 256, where headers are) and
    maybe cut short."""
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        end = min(len(raw), 256) if draw(st.booleans()) else len(raw)
        raw[draw(st.integers(0, end - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


def blobs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a mutated valid file."""
    return st.one_of(st.binary(max_size=1024), mutated(seeds))


@contextmanager
def written(name: str, content: bytes) -> Iterator[Path]:
    """A fresh folder holding ``name`` with ``content`` (hypothesis examples cannot share tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        yield path


def only_own_errors(call: Callable[[], object], error: type[Exception], path: Path) -> None:
    """``call()`` succeeds or raises ``error`` with one line naming ``path``; anything else propagates."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except error as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
