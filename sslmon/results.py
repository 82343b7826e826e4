"""Result records of a run: what the reports render and the JSON schema holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sslmon import __version__
from sslmon.metrics import METRICS

INIT_EPOCH = 0  # the untrained milestone


@dataclass
class Result:
    """The metrics of one input (an embedding file, a checkpoint or a model)."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_init(self) -> bool:
        """Whether this is the untrained (epoch-0) milestone."""
        return self.epoch == INIT_EPOCH


@dataclass
class Failure:
    """An input that could not be evaluated at all; ``error`` is one line naming it."""

    path: str
    error: str


@dataclass
class Run:
    """Everything one ``sslmon score``/``compare`` produced.

    With ``exclude_init`` the epoch-0 results are reported but not ranked (no rank, listed last)
    and not judged by ``--fail-if`` (:meth:`gated`).
    """

    config: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    exclude_init: bool = False

    def is_ranked(self, result: Result, rank_by: str) -> bool:
        """Whether ``result`` gets a rank: it has ``rank_by`` and is not an excluded init milestone."""
        return result.metrics.get(rank_by) is not None and not (self.exclude_init and result.is_init)

    def ranked(self, rank_by: str) -> list[Result]:
        """Results best first by ``rank_by``; unranked results (no value, or excluded init) come last, in input order."""
        spec = METRICS[rank_by]
        scored = [r for r in self.results if self.is_ranked(r, rank_by)]
        unscored = [r for r in self.results if not self.is_ranked(r, rank_by)]
        return sorted(scored, key=lambda r: spec.sort_key(r.metrics[rank_by])) + unscored

    def gated(self) -> Run:
        """The run that ``--fail-if`` judges: without the init milestone when ``exclude_init``."""
        if not self.exclude_init:
            return self
        return Run(self.config, [r for r in self.results if not r.is_init], self.failures, exclude_init=True)

    def to_dict(self, rank_by: str) -> dict[str, Any]:
        """The JSON document: version, config, results in rank order (with ``rank``), failures."""
        records = []
        for rank, result in enumerate(self.ranked(rank_by), start=1):
            record = {"rank": rank if self.is_ranked(result, rank_by) else None}
            record.update(result.to_dict())
            records.append(record)
        return {
            "sslmon_version": __version__,
            "config": self.config,
            "results": records,
            "failures": [asdict(f) for f in self.failures],
        }
