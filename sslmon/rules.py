"""The one home of the rules that several entry points share: the device, the evaluation seeds and the bounds of the
scoring options. A leaf module (it imports only :mod:`sslmon.errors`; torch only inside :func:`resolve_device`), so
that :class:`sslmon.options.Options`, ``EvalConfig``, the command line and the Lightning callback can all call it.

- :func:`resolve_device` / :func:`evaluation_device`: ``auto`` -> cuda, then mps, then cpu; the evaluation (kNN graph,
  silhouettes, k-means) runs on cuda or the CPU, never on mps.
- :func:`seeds_from` / :func:`check_seeds`: a seed count or a list of distinct seeds >= 0.
- :data:`BOUNDS` and :func:`check`: each option's constraint, declared once; :func:`check_choice` for the options whose
  valid values come from a later stage (metrics, presets, executors): the caller passes them.

Every check raises :class:`~sslmon.errors.OptionsError` (a ``ValueError``) ``"PARAM: problem"`` with ``param`` set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Mapping, NoReturn

from sslmon.errors import OptionsError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16")  # the forward pass: float32, or bfloat16 autocast
WEIGHTS = ("default", "none")  # torchvision weights: the model's default pretrained ones, or a seeded random init
LIDAR_IMAGES = 1000  # images (a seeded random subset) whose augmented views LiDAR uses (the paper also uses a subset)


# --------------------------------------------------------------------------- the device


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device of ``device``: ``auto`` -> cuda if available, else mps if available, else cpu; other names as
    given. OptionsError for cuda without a CUDA device; torch's RuntimeError for a name it does not know."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError("device cuda: no CUDA device is available (use cpu or auto)", param="device")
    return dev


def evaluation_device(device: Any) -> str:
    """Where the evaluation of embeddings runs for an embedding ``device`` (a torch device or its type name): its
    type, but ``cpu`` for ``mps`` (the evaluation needs float64, which mps lacks)."""
    kind = getattr(device, "type", device)
    return "cpu" if kind == "mps" else str(kind)


# --------------------------------------------------------------------------- the seeds


def seeds_from(value: int | Iterable[int]) -> tuple[int, ...]:
    """Evaluation seeds from a count (``3`` -> 0, 1, 2) or a list of seeds, checked (:func:`check_seeds`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        seeds = tuple(value)
    else:
        check("seed_count", value)
        seeds = tuple(range(value))
    check_seeds(seeds)
    return seeds


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from their command-line form: ``"3"`` -> (0, 1, 2), ``"0,5,7"`` -> (0, 5, 7); OptionsError otherwise."""
    try:
        parts = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        parts = []
    if "," not in str(text) and len(parts) == 1:
        parts = list(range(parts[0])) if parts[0] >= 1 else []
    if not parts or min(parts) < 0 or len(set(parts)) != len(parts):
        fail("seeds", f"'{text}' is not a seed count (>= 1) or a list of distinct seeds >= 0 such as 0,1,2")
    return tuple(parts)


def check_seeds(seeds: Iterable[int]) -> None:
    """OptionsError unless ``seeds`` is at least one distinct seed >= 0."""
    seeds = list(seeds)
    if not (seeds and min(seeds) >= 0 and len(set(seeds)) == len(seeds)):
        raise OptionsError(f"seeds: {seeds} is not a list of at least one distinct seed >= 0", param="seeds")


# --------------------------------------------------------------------------- bounds of the options


@dataclass(frozen=True)
class Bound:
    """One option's constraint: ``ok(value)`` must hold for a value that is not None (None: "the default");
    ``problem``: what the error says, ``{value}`` standing for the value."""

    ok: Callable[[Any], bool]
    problem: str


AT_LEAST_ONE = Bound(lambda v: v >= 1, "must be >= 1, got {value}")

BOUNDS: dict[str, Bound] = {
    "limit": AT_LEAST_ONE,  # evaluation images
    "train_limit": AT_LEAST_ONE,  # train images
    "umap_epochs": AT_LEAST_ONE,  # UMAP layout epochs
    "batch_size": AT_LEAST_ONE,  # images per forward pass
    "every_n_epochs": AT_LEAST_ONE,  # the Lightning callback scores every n-th epoch
    "seed_count": Bound(lambda v: v >= 1, "a seed count must be >= 1, got {value}"),
    "k": Bound(lambda v: v >= 2, "must be >= 2, got {value}"),  # k1 clusters
    "bin_factor": Bound(lambda v: v > 0, "must be > 0, got {value}"),  # entropy bin width in stds of Z3
    "lidar_views": Bound(lambda v: v == 0 or v >= 2, "must be 0 (off) or >= 2, got {value}"),  # views per image
    "precision": Bound(lambda v: v in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}, got {{value!r}}"),
    "weights": Bound(lambda v: v in WEIGHTS, "must be 'default' or 'none', got {value!r}"),
}


def check(param: str, value: Any) -> None:
    """OptionsError ``"PARAM: problem"`` when ``value`` (not None) breaks ``BOUNDS[param]``."""
    bound = BOUNDS[param]
    if value is not None and not bound.ok(value):
        raise OptionsError(f"{param}: {bound.problem.format(value=value)}", param=param)


def check_all(values: Mapping[str, Any]) -> None:
    """:func:`check` each of ``values`` that has a bound (in :data:`BOUNDS` order; the others are left alone)."""
    for param in BOUNDS:
        if param in values:
            check(param, values[param])


def check_choice(param: str, value: Any, valid: Collection[Any]) -> None:
    """OptionsError ``"PARAM: must be one of A, B, got 'x'"`` when ``value`` is not in ``valid``."""
    if value not in valid:
        raise OptionsError(f"{param}: must be one of {', '.join(map(str, valid))}, got {value!r}", param=param)


def fail(param: str, problem: str) -> NoReturn:
    """Raise OptionsError ``"PARAM: problem"`` (for a rule that needs more than one value)."""
    raise OptionsError(f"{param}: {problem}", param=param)
