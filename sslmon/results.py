"""Result records of a run: what the reports render and the JSON schema holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sslmon import __version__
from sslmon.metrics import METRICS


@dataclass
class Result:
    """The metrics of one input (an embedding file, a checkpoint or a model).

    ``metrics`` are means over the evaluation seeds; ``metrics_std`` their sample std (None with one
    seed); ``per_seed`` one dict of every metric per seed, in the order of ``config.seeds``.
    """

    name: str
    path: str | None
    metrics: dict[str, float | None]
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None
    n_samples: int | None = None
    dim: int | None = None
    k: int | None = None
    reference: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    metrics_std: dict[str, float | None] = field(default_factory=dict)
    per_seed: list[dict[str, float | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Failure:
    """An input that could not be evaluated at all; ``error`` is one line naming it."""

    path: str
    error: str


@dataclass
class Run:
    """Everything one ``sslmon score``/``compare`` produced."""

    config: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def ranked(self, rank_by: str) -> list[Result]:
        """Results best first by ``rank_by``; results without that metric come last, in input order."""
        spec = METRICS[rank_by]
        scored = [r for r in self.results if r.metrics.get(rank_by) is not None]
        unscored = [r for r in self.results if r.metrics.get(rank_by) is None]
        return sorted(scored, key=lambda r: spec.sort_key(r.metrics[rank_by])) + unscored

    def to_dict(self, rank_by: str) -> dict[str, Any]:
        """The JSON document: version, config, results in rank order (with ``rank``), failures."""
        records = []
        for rank, result in enumerate(self.ranked(rank_by), start=1):
            record = {"rank": rank if result.metrics.get(rank_by) is not None else None}
            record.update(result.to_dict())
            records.append(record)
        return {
            "sslmon_version": __version__,
            "config": self.config,
            "results": records,
            "failures": [asdict(f) for f in self.failures],
        }
