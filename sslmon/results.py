"""Result records of a run: what the reports render and the JSON schema holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import math
from typing import Any, Callable

from sslmon import __version__
from sslmon.metrics import METRICS
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, consensus_keys, metric_keys

INIT_EPOCH = 0  # the untrained milestone


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

    @property
    def is_init(self) -> bool:
        """Whether this is the untrained (epoch-0) milestone."""
        return self.epoch == INIT_EPOCH

    @classmethod
    def from_dict(cls, doc: Any) -> Result:
        """The inverse of :meth:`to_dict` for a document read back from disk; ValueError naming the first
        field that is missing, of the wrong type, or a non-finite number (nothing half-checked gets through)."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        names = {f.name for f in fields(cls)}
        if set(doc) != names:
            raise ValueError(f"fields {sorted(set(doc) ^ names)} missing or unexpected")
        _expect(doc["name"], str, "name")
        for key in ("path", "reference"):
            _expect(doc[key], (str, type(None)), key)
        for key in ("epoch", "n_samples", "dim", "k"):
            _expect(doc[key], (int, type(None)), key)
        _expect(doc["source"], dict, "source")
        _expect(doc["per_seed"], list, "per_seed")
        number = (int, float, type(None))
        for key, values, kinds in (("metrics", doc["metrics"], number), ("errors", doc["errors"], str),
                                   ("timings", doc["timings"], (int, float)), ("metrics_std", doc["metrics_std"], number),
                                   *((f"per_seed[{i}]", d, number) for i, d in enumerate(doc["per_seed"]))):
            _expect(values, dict, key)
            for name, value in values.items():
                _expect(value, kinds, f"{key}.{name}")
        return cls(**doc)


def _expect(value: Any, kinds: type | tuple[type, ...], where: str) -> None:
    """ValueError unless ``value`` is one of ``kinds`` (bool is not a number) and, if a float, finite."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"'{where}' has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{where}' is not a finite number")


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

    def rank_keys(self, rank_by: str) -> list[float | None]:
        """Per result, a key that is smaller for a better rank; ``None`` for unranked results (no value,
        or an excluded init milestone). ``rank_by`` is a metric key or ``"consensus"``: the mean rank
        over the :data:`~sslmon.selection.DEFAULT_CONSENSUS` metrics (:func:`~sslmon.selection.consensus_keys`)."""
        eligible = [not (self.exclude_init and r.is_init) for r in self.results]

        def column(key: str) -> list[float | None]:
            return metric_keys([r.metrics.get(key) if ok else None for r, ok in zip(self.results, eligible)], METRICS[key])

        if rank_by == CONSENSUS:
            return consensus_keys([column(k) for k in DEFAULT_CONSENSUS]) if self.results else []
        return column(rank_by)

    def ranking(self, rank_by: str) -> list[tuple[Result, float | None]]:
        """(result, rank key) best first; unranked results (key ``None``) come last, in input order."""
        pairs = list(zip(self.results, self.rank_keys(rank_by)))
        scored = sorted((p for p in pairs if p[1] is not None), key=lambda p: p[1])
        return scored + [p for p in pairs if p[1] is None]

    def ranked(self, rank_by: str) -> list[Result]:
        """Results best first by ``rank_by``; unranked results (no value, or excluded init) come last, in input order."""
        return [r for r, _ in self.ranking(rank_by)]

    def gated(self) -> Run:
        """The run that ``--fail-if`` judges: without the init milestone when ``exclude_init``."""
        if not self.exclude_init:
            return self
        return Run(self.config, [r for r in self.results if not r.is_init], self.failures, exclude_init=True)

    def to_dict(self, rank_by: str) -> dict[str, Any]:
        """The JSON document: version, config, results in rank order (with ``rank``), failures."""
        records = []
        for rank, (result, key) in enumerate(self.ranking(rank_by), start=1):
            record = {"rank": rank if key is not None else None}
            record.update(result.to_dict())
            records.append(record)
        return {
            "sslmon_version": __version__,
            "config": self.config,
            "results": records,
            "failures": [asdict(f) for f in self.failures],
        }


OnResult = Callable[[Run, "Result | Failure"], None]  # called with the run so far and the record just added to it
