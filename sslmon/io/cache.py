"""Results cache: a checkpoint already scored with the same file content, dataset
and settings is read back instead of recomputed.

Location: ``$SSLMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslmon``, else
``~/.cache/sslmon``. One JSON file per key (``<sha256>.json``), written to a
temporary file in the same folder, flushed to disk and moved into place with
``os.replace``, so a reader (another sslmon process sharing the folder included)
never sees a half-written entry.

The key (:func:`cache_key`) is the SHA-256 over, and only over: the input's identity (a checkpoint's bytes, file
name, ``arch`` and ``trust_checkpoints``; a torchvision model's name, weights, init seed and torchvision version),
the digest of the images and labels (evaluation and train split, so ``dataset``, ``limit`` and ``seed`` enter
through them), the evaluation settings (:meth:`EvalConfig.as_dict`, the metrics asked for, ``precision``, the
device type) and the versions of sslmon, Python and the libraries that can change the numbers
(:func:`sslmon.versions.library_versions`: umap-learn, pynndescent, scikit-learn, numba, torch, numpy, scipy). Names, output options, ``batch_size`` and the
informational fields of a run's config do not split the cache.

An entry holds its own key and the result; one that is unreadable, truncated,
written for another key, of another schema or holding a non-finite number is
ignored (and rewritten by the next ``put``). A folder that cannot be written
turns the cache off for the rest of the run with one warning.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import platform
import tempfile
from typing import Any, Callable

import numpy as np
import torch

from sslmon import __version__
from sslmon.versions import library_versions
from sslmon.io.output import read_regular
from sslmon.paths import default_cache_dir
from sslmon.results import Result


def array_digest(*arrays: Any) -> str:
    """SHA-256 over the shapes, dtypes and bytes of arrays/tensors (None allowed), hex."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


def cache_key(content: str, dataset: str, settings: dict[str, Any]) -> str:
    """The key of a result (see the module docstring): SHA-256 (hex) of the input's identity ``content``, the images'
    digest ``dataset``, the evaluation ``settings`` (:func:`sslmon.api.cache_settings`) and the library versions."""
    versions = {"sslmon": __version__, "python": platform.python_version(), **library_versions()}
    payload = json.dumps({"content": content, "dataset": dataset, "settings": settings, "versions": versions}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


SCHEMA = "sslmon-result-cache/2"
MAX_ENTRY_BYTES = 16 << 20  # a real entry is a few KiB


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


class ResultCache:
    """Maps (content digest, dataset digest, settings) to a stored :class:`Result`.

    ``warn`` receives the one line said when the folder turns out not to be writable.
    """

    def __init__(self, folder: str | Path | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.hits = 0
        self.writable = True
        self.warn = warn

    def get(self, key: str) -> Result | None:
        """The stored result, or None when absent or not a sound entry for this key (then it is recomputed)."""
        try:
            raw = read_regular(self.folder / f"{key}.json", MAX_ENTRY_BYTES)
            doc = json.loads(raw, parse_constant=_refuse_constant)
            if len(raw) > MAX_ENTRY_BYTES or not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("key") != key:
                return None
            result = Result.from_dict(doc.get("result"))
        except (OSError, ValueError, TypeError, RecursionError):
            return None
        self.hits += 1
        return result

    def put(self, key: str, result: Result) -> None:
        """Store ``result`` atomically; a folder that cannot be written says so once and the cache stops writing."""
        if not self.writable:
            return
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"schema": SCHEMA, "key": key, "result": result.to_dict()}, f, allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / f"{key}.json")
        except OSError as exc:
            self.writable = False
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if self.warn:
                self.warn(f"warning: results cache {self.folder} cannot be written ({exc.strerror or type(exc).__name__}); "
                          "going on without caching")
        except BaseException as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if not isinstance(exc, ValueError):  # ValueError: a non-finite number, which is never cached
                raise
