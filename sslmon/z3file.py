"""Stand-in until the formats work lands."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from sslmon.output import write_atomic


def write_z3(path: Path, z3: Any, *, epoch: int | None = None, c1: Any = None, c2: Any = None, labels: Any = None) -> None:
    extra = {key: arr for key, arr in (("c1", c1), ("c2", c2), ("labels", labels)) if arr is not None}
    buffer = io.BytesIO()
    np.savez(buffer, z3=z3, epoch=-1 if epoch is None else epoch, **extra)
    write_atomic(path, buffer.getvalue())
