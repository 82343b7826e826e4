"""Result records of a run: what the reports render and the JSON schema holds."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
import math
from typing import Any, Callable, Iterator

from sslmon.metrics import METRICS
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, INPUT, consensus_keys, epoch_keys, metric_keys

INIT_EPOCH = 0  # the untrained milestone
# Version of the results contract (sslmon/schema/results.schema.json, docs/results-format.md): JSON, JSON Lines and CSV.
# 2: schema_version, the JSON Lines header and `time`, CSV columns named as the JSON paths. Documents without it are 1.
SCHEMA_VERSION = 2
# added after sslmon 0.1.0 (metrics_std, per_seed: 0.2.0; notes, spread: 0.4.0): absent from older documents, read as empty
DERIVED = ("rank", "flags", "recommended")  # what recommend.document adds to each record (read back, checked and dropped)
DOCUMENT_EXTRAS = ("recommendation", "recommendations", "reference_values")  # what recommend.document adds to the document (read back as they are)
# run: after 0.4.0
LATER_FIELDS: dict[str, Callable[[], Any]] = {"metrics_std": dict, "per_seed": list, "notes": dict, "spread": type(None),
                                              "run": type(None)}


@dataclass
class Result:
    """The metrics of one input (an embedding file, a checkpoint or a model).

    ``metrics`` are means over the evaluation seeds; ``metrics_std`` their sample std (None with one
    seed); ``per_seed`` one dict of every metric per seed, in the order of ``config.seeds``; ``notes`` what a
    metric recorded beside its value, by metric key (e.g. ``lp_acc``: the probe did not converge); ``spread`` the
    relative spread of the embeddings (:func:`sslmon.alarms.relative_spread`; None when unknown), for the collapse alarm;
    ``run`` the training run it belongs to: the folder a checkpoint came from (the folder given, or a checkpoint
    file's parent folder); None for embedding files and torchvision models, which are ranked together as models.
    Results of different runs are ranked and recommended apart (:meth:`Run.parts`).
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
    notes: dict[str, str] = field(default_factory=dict)
    spread: float | None = None
    run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_init(self) -> bool:
        """Whether this is the untrained (epoch-0) milestone."""
        return self.epoch == INIT_EPOCH

    @classmethod
    def from_dict(cls, doc: Any) -> Result:
        """The inverse of :meth:`to_dict` for a document read back from disk; ValueError naming the first
        field that is missing, of the wrong type, or a non-finite number (nothing half-checked gets through).
        The :data:`LATER_FIELDS` may be absent (documents of sslmon 0.1.0) and are then empty."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        doc = {**{key: kind() for key, kind in LATER_FIELDS.items()}, **doc}
        _expect_fields(doc, {f.name for f in fields(cls)})
        _expect(doc["name"], str, "name")
        for key in ("path", "reference", "run"):
            _expect(doc[key], (str, type(None)), key)
        _expect(doc["spread"], (int, float, type(None)), "spread")
        for key in ("epoch", "n_samples", "dim", "k"):
            _expect(doc[key], (int, type(None)), key)
        _expect(doc["source"], dict, "source")
        _expect(doc["per_seed"], list, "per_seed")
        number = (int, float, type(None))
        for key, values, kinds in (("metrics", doc["metrics"], number), ("errors", doc["errors"], str), ("notes", doc["notes"], str),
                                   ("timings", doc["timings"], (int, float)), ("metrics_std", doc["metrics_std"], number),
                                   *((f"per_seed[{i}]", d, number) for i, d in enumerate(doc["per_seed"]))):
            _expect(values, dict, key)
            for name, value in values.items():
                _expect(value, kinds, f"{key}.{name}")
        return cls(**doc)


def _expect_fields(doc: dict[str, Any], names: set[str]) -> None:
    """ValueError unless the keys of ``doc`` are exactly ``names``."""
    if set(doc) != names:
        raise ValueError(f"fields {sorted(set(doc) ^ names)} missing or unexpected")


def finite(value: Any) -> float | None:
    """``value`` as a float; None unless it is a finite number (bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _expect(value: Any, kinds: type | tuple[type, ...], where: str) -> None:
    """ValueError unless ``value`` is one of ``kinds`` (bool is not a number) and, if a float, finite."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"'{where}' has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{where}' is not a finite number")


@dataclass
class Failure:
    """An input that could not be evaluated at all; ``error`` is one line naming it; ``param``: the option whose
    value would fix it, if one would (see :class:`sslmon.errors.SslmonError`)."""

    path: str
    error: str
    param: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> Failure:
        """The inverse of ``asdict``: ValueError naming the field that is missing, unexpected or not a string."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        doc = {"param": None, **doc}  # documents of sslmon < 0.3 have no param
        _expect_fields(doc, {"path", "error", "param"})
        for key in ("path", "error"):
            _expect(doc[key], str, key)
        _expect(doc["param"], (str, type(None)), "param")
        return cls(**doc)


@dataclass
class Run:
    """Everything one ``sslmon score``/``compare`` produced.

    With ``exclude_init`` the epoch-0 results are reported but not ranked (no rank, listed last)
    and not judged by ``--fail-if`` (:meth:`gated`). ``reference_values``: what a structureless embedding and the
    init milestone get (:func:`sslmon.api.add_reference_values`; empty when not computed).
    """

    config: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    exclude_init: bool = False
    reference_values: dict[str, Any] = field(default_factory=dict)

    def values(self, key: str) -> list[float | None]:
        """The metric ``key`` per result, in order; None where it is missing, undefined or not finite."""
        return [finite(r.metrics.get(key)) for r in self.results]

    def epochs(self) -> list[int | None]:
        """The epoch per result, in order; None where unknown."""
        return [r.epoch for r in self.results]

    def rank_keys(self, rank_by: str) -> list[float | None]:
        """Per result of a single training run (see :meth:`ranking` for several), a key that is smaller for a better
        rank; ``None`` for unranked results (no value,
        or an excluded init milestone). ``rank_by`` is a metric key, ``"consensus"``: the mean rank
        over the :data:`~sslmon.selection.DEFAULT_CONSENSUS` metrics (:func:`~sslmon.selection.consensus_keys`), or
        ``"epoch"``: newest first (a result without an epoch is not ranked), or ``"input"``: none ranked (input order)."""
        if rank_by == INPUT:
            return [None] * len(self.results)
        eligible = [not (self.exclude_init and r.is_init) for r in self.results]
        if rank_by == EPOCH:
            return epoch_keys([r.epoch if ok else None for r, ok in zip(self.results, eligible)])

        def column(key: str) -> list[float | None]:
            return metric_keys([r.metrics.get(key) if ok else None for r, ok in zip(self.results, eligible)], METRICS[key])

        if rank_by == CONSENSUS:
            return consensus_keys([column(k) for k in DEFAULT_CONSENSUS]) if self.results else []
        return column(rank_by)

    def parts(self) -> list[Run]:
        """One run per training run (:attr:`Result.run`), in the order each first appears; ``[self]`` when all results
        belong to one. Each part has this run's config, ``exclude_init`` and reference values, and no failures."""
        labels = list(dict.fromkeys(r.run for r in self.results))
        if len(labels) <= 1:
            return [self]
        return [Run(self.config, [r for r in self.results if r.run == label], exclude_init=self.exclude_init,
                    reference_values=self.reference_values) for label in labels]

    def ranking(self, rank_by: str) -> list[tuple[Result, float | None]]:
        """(result, rank key) best first within each training run (:meth:`parts`, one after the other); unranked
        results (key ``None``) come last in their run, in input order. Keys of different runs are not comparable."""
        parts = self.parts()
        if len(parts) > 1:
            return [pair for part in parts for pair in part.ranking(rank_by)]
        pairs = list(zip(self.results, self.rank_keys(rank_by)))
        scored = sorted((p for p in pairs if p[1] is not None), key=lambda p: p[1])
        return scored + [p for p in pairs if p[1] is None]

    def ranks(self, rank_by: str) -> list[tuple[Result, int | None]]:
        """(result, rank) in :meth:`ranking` order: the rank 1..n within the result's own run, None if unranked."""
        return [(result, rank if key is not None else None) for part in self.parts()
                for rank, (result, key) in enumerate(part.ranking(rank_by), start=1)]

    def ranked(self, rank_by: str) -> list[Result]:
        """Results best first by ``rank_by``; unranked results (no value, or excluded init) come last, in input order."""
        return [r for r, _ in self.ranking(rank_by)]

    def gated(self) -> Run:
        """The run that ``--fail-if`` judges: without the init milestone when ``exclude_init``."""
        if not self.exclude_init:
            return self
        return Run(self.config, [r for r in self.results if not r.is_init], self.failures, exclude_init=True)

    @classmethod
    def from_dict(cls, doc: Any) -> Run:
        """The inverse of :func:`sslmon.recommend.document`: the results in the document's (rank) order, each record's ``rank`` dropped;
        ``exclude_init`` from ``config``. ValueError naming the first bad field (``results[2]: 'metrics.rankme' ...``)."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        doc = {"schema_version": 1, **doc}  # documents before the contract's version 2 have none
        _expect_fields({k: v for k, v in doc.items() if k not in DOCUMENT_EXTRAS},
                       {"sslmon_version", "schema_version", "config", "results", "failures"})
        _expect(doc["sslmon_version"], str, "sslmon_version")
        check_schema_version(doc["schema_version"])
        _expect(doc["config"], dict, "config")
        _expect(doc["results"], list, "results")
        _expect(doc["failures"], list, "failures")
        _expect(doc.get("reference_values", {}), dict, "reference_values")
        run = cls(doc["config"], exclude_init=doc["config"].get("exclude_init") is True,
                  reference_values=doc.get("reference_values", {}))
        for i, record in enumerate(doc["results"]):
            with _where(f"results[{i}]"):
                run.results.append(Result.from_dict(without_rank(record)))
        for i, record in enumerate(doc["failures"]):
            with _where(f"failures[{i}]"):
                run.failures.append(Failure.from_dict(record))
        return run


def check_schema_version(value: Any) -> None:
    """ValueError unless ``value`` is a schema version this sslmon reads (an integer from 1 to :data:`SCHEMA_VERSION`)."""
    _expect(value, int, "schema_version")
    if not 1 <= value <= SCHEMA_VERSION:
        raise ValueError(f"'schema_version' is {value}: written by a newer sslmon (this one reads 1 to {SCHEMA_VERSION}; upgrade sslmon)")


def without_rank(record: Any) -> Any:
    """A result record without the :data:`DERIVED` fields that :func:`sslmon.recommend.document` and JSON Lines add: ``rank``
    (ValueError unless it is a positive integer or null), ``flags`` (a list of objects) and ``recommended`` (a
    boolean); anything but a JSON object is returned as it is, for ``from_dict`` to refuse."""
    if not isinstance(record, dict):
        return record
    rank = record.get("rank")
    _expect(rank, (int, type(None)), "rank")
    if rank is not None and rank < 1:
        raise ValueError(f"'rank' is {rank}, not a positive integer")
    _expect(record.get("flags", []), list, "flags")
    for i, flag in enumerate(record.get("flags", [])):
        _expect(flag, dict, f"flags[{i}]")
    if "recommended" in record and not isinstance(record["recommended"], bool):
        raise ValueError(f"'recommended' has the wrong type ({type(record['recommended']).__name__})")
    return {key: value for key, value in record.items() if key not in DERIVED}


@contextmanager
def _where(place: str) -> Iterator[None]:
    """Prefix a ValueError raised inside with ``place`` (a record's place in its document: ``results[2]``, ``line 7``)."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{place}: {exc}") from None


OnResult = Callable[[Run, "Result | Failure"], None]  # called with the run so far and the record just added to it
