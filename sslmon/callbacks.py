"""The plain callbacks through which every stage reports progress (a leaf module: types only)."""

from __future__ import annotations

from typing import Callable

Log = Callable[[str], None]  # one line for the user (stderr on the command line)
OnProgress = Callable[[str, int, int], None]  # (task, done, total): "encoders" and "embedding NAME", in items
