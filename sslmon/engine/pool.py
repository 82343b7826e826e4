"""The UMAP layouts of several evaluation seeds at once: this process and worker processes, one layout each.

umap-learn's layout SGD holds Python's GIL and scipy's ARPACK (its spectral initialisation) is not
thread-safe, so the seeds run in separate processes. A worker is a plain ``python -m sslmon.engine.pool``
child, not a multiprocessing one: nothing is forked after torch started its OpenMP threads, and the
caller's ``__main__`` (a training script) is never imported again in the child. Workers start once per
process, on first use, and every later evaluation reuses them (their numba kernels load once, from
sslmon's on-disk cache). A worker gets the embeddings, the fuzzy graph, its seeds and the epoch count in
one pickled message on its stdin and answers one message per seed on its stdout; it runs
:func:`sslmon.engine.layout.umap_layout`, the function this process runs for its own seeds, so every Z3
is bit-identical to the serial path (tested). A worker that dies or cannot start costs nothing but time:
its seeds are laid out here (and after :data:`MAX_FAILED_STARTS` workers that never answered, every seed).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
import os
from pathlib import Path
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, Sequence

import numpy as np

from sslmon.engine.layout import FuzzyGraph, umap_layout

# Who runs the layouts of an evaluation: recorded in the run's config (``layout``).
LAYOUT = "umap-learn"
# Seconds a worker gets to exit after its stdin closes, before it is killed.
EXIT_GRACE_S = 2.0
# Workers that died before their first answer (or could not start) after which this process stops trying.
MAX_FAILED_STARTS = 2


@dataclass(frozen=True)
class Layout:
    """One seed's outcome: Z3 (n, 3) float64, or the exception the layout raised; its seconds of computing."""

    value: np.ndarray | BaseException
    seconds: float

    def get(self) -> np.ndarray:
        """Z3, or raise what the layout raised (as the serial path would have)."""
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def cpu_budget() -> int:
    """The CPUs layouts may use at once: ``NUMBA_NUM_THREADS`` when set (the Ray executor sets it to a task's
    CPUs), else the CPUs this process may run on."""
    try:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(n_seeds: int, requested: int | None = None) -> int:
    """Worker processes that lay out ``n_seeds`` seeds besides this one: ``requested`` (None: one per CPU of
    :func:`cpu_budget` beyond the first), at most ``n_seeds - 1``; 0 is the serial path."""
    wanted = cpu_budget() - 1 if requested is None else requested
    return max(0, min(wanted, n_seeds - 1))


class _Worker:
    """One layout worker process and its two pipes."""

    def __init__(self, jit_folder: Path | None) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the same sslmon as this process's
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        argv = [sys.executable, "-m", "sslmon.engine.pool", str(jit_folder or "")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.sender: threading.Thread | None = None
        self.send_error: BaseException | None = None
        self.answered = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: Any) -> None:
        """Write ``message`` in a background thread (a worker still starting reads it only when ready)."""

        def write() -> None:
            try:
                pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
            except BaseException as exc:  # a worker that died: its seeds are laid out in the caller
                self.send_error = exc

        self.send_error = None
        self.sender = threading.Thread(target=write, name="sslmon-layout-send", daemon=True)
        self.sender.start()

    def receive(self) -> tuple[int, np.ndarray | BaseException, float]:
        """The next answer; raises EOFError (or another error) when the worker died or the message was lost."""
        if self.sender is not None:
            self.sender.join()
            self.sender = None
            if self.send_error is not None:
                raise EOFError(f"layout worker unreachable: {self.send_error!r}")
        answer = pickle.load(self.proc.stdout)
        self.answered = True
        return answer

    def stop(self) -> None:
        """Close its stdin (it exits), kill it if it has not after :data:`EXIT_GRACE_S`."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


_workers: list[_Worker] = []
_lock = threading.Lock()
_failed_starts = 0  # see MAX_FAILED_STARTS


def start(n: int, jit_folder: Path | None = None) -> None:
    """Have ``n`` live workers (start the missing ones; they load umap-learn while the caller goes on)."""
    _workers[:] = [w for w in _workers if w.alive()]
    while len(_workers) < n:
        _workers.append(_Worker(jit_folder))


def shutdown() -> None:
    """Stop every worker (at exit; the next layouts start new ones)."""
    while _workers:
        _workers.pop().stop()


atexit.register(shutdown)


def layouts(Z: np.ndarray, fuzzy: FuzzyGraph, seeds: Sequence[int], n_epochs: int | None, workers: int,
            jit_folder: Path | None = None) -> dict[int, Layout]:
    """Each seed's :func:`umap_layout` of ``fuzzy``, with ``workers`` worker processes besides this one.

    Seeds are dealt round-robin: this process takes the first, a worker the next, ... ``workers`` 0 (or a
    worker that cannot start) lays every seed out here, one after another. An interrupt kills the workers.
    """
    with _lock:
        return _layouts(Z, fuzzy, list(seeds), n_epochs, workers, jit_folder)


def _here(Z: np.ndarray, fuzzy: FuzzyGraph, seed: int, n_epochs: int | None, jit_folder: Path | None) -> Layout:
    t0 = time.perf_counter()
    try:
        value: np.ndarray | BaseException = umap_layout(Z, fuzzy, seed, n_epochs, jit_folder)
    except Exception as exc:
        value = exc
    return Layout(value, time.perf_counter() - t0)


def _layouts(Z: np.ndarray, fuzzy: FuzzyGraph, seeds: list[int], n_epochs: int | None, workers: int,
             jit_folder: Path | None) -> dict[int, Layout]:
    global _failed_starts
    workers = max(0, min(workers, len(seeds) - 1)) if _failed_starts < MAX_FAILED_STARTS else 0
    if workers:
        try:
            start(workers, jit_folder)
        except OSError:  # no interpreter to start, no processes left: the serial path from now on
            _failed_starts, workers = MAX_FAILED_STARTS, 0
    hands = [seeds[i :: workers + 1] for i in range(workers + 1)]
    busy = list(zip(_workers[:workers], hands[1:]))
    out: dict[int, Layout] = {}
    try:
        for worker, hand in busy:
            worker.send((Z, fuzzy, hand, n_epochs))
        for seed in hands[0]:
            out[seed] = _here(Z, fuzzy, seed, n_epochs, jit_folder)
        for worker, hand in busy:
            try:
                for _ in hand:
                    seed, value, seconds = worker.receive()
                    out[seed] = Layout(value, seconds)
            except Exception:  # died or garbled: lay its remaining seeds out here, start a new one next time
                _failed_starts += not worker.answered
                worker.kill()
            for seed in hand:
                if seed not in out:
                    out[seed] = _here(Z, fuzzy, seed, n_epochs, jit_folder)
    except BaseException:  # an interrupt: the workers are mid-layout, in no state to reuse
        for worker, _ in busy:
            worker.kill()
        raise
    return {seed: out[seed] for seed in seeds}


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(jit_folder: Path | None, requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: one request ``(Z, fuzzy, seeds, n_epochs)`` at a time, one answer per seed, until EOF."""
    from sslmon.engine.jit import enable_numba_cache

    enable_numba_cache(jit_folder)
    while True:
        try:
            Z, fuzzy, seeds, n_epochs = pickle.load(requests)
        except EOFError:
            return
        for seed in seeds:
            layout = _here(Z, fuzzy, seed, n_epochs, jit_folder)
            value = layout.value if not isinstance(layout.value, BaseException) else _portable(layout.value)
            pickle.dump((seed, value, layout.seconds), answers, protocol=pickle.HIGHEST_PROTOCOL)
            answers.flush()


def main() -> None:
    """``python -m sslmon.engine.pool [JIT_FOLDER]``: serve layouts on stdin/stdout (stray prints go to stderr)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a worker quietly; the caller reports the interrupt
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None
    _serve(folder, sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
