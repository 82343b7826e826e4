"""sslmon: label-free monitoring of self-supervised encoders.

The public API (:mod:`sslmon.api`) is importable from here; names are loaded on first use, so ``import sslmon`` is
cheap and ``sslmon.evaluate`` pulls in neither torchvision, PIL nor the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.5.0"

_HOMES = {
    "evaluate": "sslmon.api", "score": "sslmon.api", "compare": "sslmon.api", "score_model": "sslmon.api",
    "score_embeddings": "sslmon.api", "embed": "sslmon.api", "Options": "sslmon.api", "Scorer": "sslmon.api",
    "select": "sslmon.api", "Choice": "sslmon.api",
    "EvalConfig": "sslmon.evaluation", "Evaluation": "sslmon.evaluation",
    "METRICS": "sslmon.metrics", "MetricSpec": "sslmon.metrics",
    "Run": "sslmon.results", "Result": "sslmon.results", "Failure": "sslmon.results",
    "load_run": "sslmon.io.runfile", "load_dataset": "sslmon.io.datasets",
    "SslmonError": "sslmon.errors", "OptionsError": "sslmon.errors",
}
__all__ = [*_HOMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sslmon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
