"""Encoder sources: checkpoint files on disk and torchvision's (pretrained) models.

Every loader returns an :class:`Encoder` whose model maps images ``(n, 3, H, W)`` to
pooled embeddings ``(n, d)``. Checkpoints are read with ``weights_only=True`` unless the
caller trusts them; every failure is a :class:`CheckpointError` with a one-line message
that names the file.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from sslmon.models.archs import (
    registry,
    arch_signature,
    build_arch,
    check_arch,
    list_archs,
    torchvision_backbone,
    torchvision_family,
)
from sslmon.io import milestones
from sslmon.errors import SslmonError
from sslmon.io.inputs import InputError, check_regular_file

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "CheckpointError",
    "Encoder",
    "build_arch",
    "find_checkpoints",
    "list_archs",
    "load_checkpoint",
    "load_torchvision",
    "parse_epoch",
]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
# Checkpoint-dict keys that may hold the weights, in order of preference. timm writes ``state_dict``
# and ``state_dict_ema`` (its validation loads the former unless asked for the EMA); DINO / iBOT write
# ``student`` and ``teacher`` and evaluate the teacher (the EMA of the student); BYOL keeps an
# ``online_network`` and its EMA ``target_network`` and evaluates the online one.
WRAPPER_KEYS = (
    milestones.WEIGHTS, "model", "model_ema", "state_dict_ema", "encoder", "backbone",
    "teacher", "student", "online_network", "target_network",
)
# Why the first of these was taken over the others when a checkpoint holds several.
_PREFERRED_BECAUSE = {
    "teacher": "the teacher (EMA of the student) is the network DINO/iBOT evaluate",
    "online_network": "the online network is the one BYOL evaluates",
}
# Environment variable that turns torchvision weight downloads off (as the option offline does).
OFFLINE_ENV = "SSLMON_OFFLINE"
# Key prefixes added by wrappers (DataParallel, Lightning, torch.compile, SSL method classes).
WRAPPER_PREFIXES = ("module.", "model.", "encoder.", "backbone.", "_orig_mod.", "encoder_q.")
# First key component of classifier heads; dropped unless the backbone has the key
# (convnext / maxvit keep the normalisation layers of their ``classifier``).
HEAD_NAMES = frozenset({"fc", "classifier", "head", "heads", "AuxLogits", "aux1", "aux2"})
# First key component of training-only parts of SSL methods: projector / predictor heads,
# SwAV prototypes, MoCo queues, momentum / key / teacher encoders.
_TRAINING_PART = re.compile(
    r"^(projector|projection_head|predictor|prediction_head|prototypes|key_encoder|encoder_k|teacher)$"
    r"|^queue|^momentum_|_momentum$"
)
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global|whose module (\S+) is blocked")
_SHOWN = 5  # keys listed in an error message before "... (N in all)"


class CheckpointError(SslmonError):
    """A checkpoint cannot be used; the message is one line naming the file and the problem."""


@dataclass
class Encoder:
    """A backbone ready to embed images, with what is known about it."""

    name: str  # display name: file name for checkpoints, model name for torchvision
    model: nn.Module  # eval mode; (n, 3, H, W) float -> (n, d)
    arch: str  # registry name used ("torchscript" for TorchScript archives)
    path: str | None
    epoch: int | None  # None: unknown; init milestone = 0
    mean: tuple[float, float, float] | None  # per-channel normalisation; None: unknown
    std: tuple[float, float, float] | None
    input_size: int | None  # resize images to this side (pixels); None: keep dataset size
    notes: list[str] = field(default_factory=list)
    training: dict[str, float] = field(default_factory=dict)  # losses stored by `sslmon train` (io.milestones)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- epochs


_EPOCH_NAME = re.compile(r"(?<![a-z])(?:epoch|ep)s?[=_-]?(\d+)(?!\d)")
_MILESTONE_NAME = re.compile(r"(?<![a-z])(?:milestone|checkpoint|ckpt)s?[=_-]?(\d+)(?!\d)")
_INIT_NAME = re.compile(r"(?<![a-z])(?:init|initial|untrained)(?![a-z])")
_BARE_NUMBER = re.compile(r"(?<![a-z0-9])\d+(?![a-z0-9])")
_STEP_LABEL = re.compile(r"(?:step|iter|iteration)s?[=_-]?$")


def parse_epoch(path: str | os.PathLike[str], checkpoint_obj: Any = None) -> int | None:
    """Training epoch of a checkpoint: its integer ``epoch`` entry, else read from the file name.

    Names: ``epoch=19-step=400`` / ``epoch_19`` / ``ep20`` -> 19 / 19 / 20; ``ckpt_0020`` /
    ``milestone-40`` -> 20 / 40; ``init`` / ``initial`` / ``untrained`` -> 0; otherwise the
    only standalone number that is not a step count (``simclr_100.pt`` -> 100, but
    ``resnet18.pt`` and ``step_500.pt`` -> None).
    """
    if isinstance(checkpoint_obj, Mapping):
        epoch = checkpoint_obj.get(milestones.EPOCH)
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            return epoch
    stem = Path(path).name.lower()
    for suffix in CHECKPOINT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    if match := _EPOCH_NAME.search(stem):
        return int(match.group(1))
    if _INIT_NAME.search(stem):
        return 0
    if match := _MILESTONE_NAME.search(stem):
        return int(match.group(1))
    numbers = [m for m in _BARE_NUMBER.finditer(stem) if not _STEP_LABEL.search(stem[: m.start()])]
    return int(numbers[0].group()) if len(numbers) == 1 else None


def find_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files directly in ``folder``, by epoch (from the name): init first, unknown last by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a directory")
    try:
        # Everything but folders: a broken link or a FIFO named like a checkpoint is reported, not skipped.
        files = [p for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and not p.is_dir()]
    except OSError as e:
        raise CheckpointError(f"{folder}: cannot list the folder ({_reason(e)})") from None

    def order(p: Path) -> tuple[bool, int, str]:
        epoch = parse_epoch(p)
        return epoch is None, epoch or 0, p.name

    return sorted(files, key=order)


# --------------------------------------------------------------------------- reading files


def _reason(error: BaseException, limit: int = 2000) -> str:
    """One-line cause of ``error``: its type and whole message on one line (torch's weights-only explanation is
    replaced by the unpickler's own error); only a message over ``limit`` characters is cut."""
    message = str(error).strip()
    if inner := re.search(r"WeightsUnpickler error:\s*(\S.*)", message):
        message = inner.group(1)
    message = " ".join(message.split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(keys: list[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e, ... (12 in all)``."""
    shown = ", ".join(keys[:_SHOWN])
    return shown if len(keys) <= _SHOWN else f"{shown}, ... ({len(keys)} in all)"


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip holding ``constants.pkl``, as torch.load checks)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):  # e.g. a member name not UTF-8
        return False


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    """Tensors of a .safetensors file (on the CPU)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(
            f"{path}: reading .safetensors files needs the safetensors package: pip install sslmon[safetensors]"
        ) from None
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a safetensors file ({_reason(e)})") from e


PICKLE_PROTOCOL_2_PLUS = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 or later


def _read(path: Path, trust: bool) -> Any:
    """The object stored in a checkpoint file (weights-only unpickling unless ``trust``). A file that is neither a
    zip archive (torch.save's format) nor a pickle is refused by its first bytes, before torch parses it."""
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith((b"PK\x03\x04", PICKLE_PROTOCOL_2_PLUS)):
        what = "an empty file" if not head else f"it starts with {head!r}"
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle: {what})")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols is not the user's to act on
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as e:  # UnpicklingError, or RuntimeError / EOFError / zip errors for corrupt files
        if isinstance(e, pickle.UnpicklingError) and not trust and (unsafe := _UNSAFE_GLOBAL.search(str(e))):
            raise CheckpointError(
                f"{path}: needs arbitrary unpickling ({unsafe.group(1) or unsafe.group(2)}), which can run code; "
                "allow it with trust_checkpoints if you trust this file", param="trust_checkpoints"
            ) from e
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_reason(e)})") from e


def _describe(obj: Any) -> str:
    """Short description of an unpickled object for error messages."""
    if isinstance(obj, Mapping):
        return f"a dict with keys {_listing([str(k) for k in obj])}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"


def _state_dict_of(obj: Any, path: Path, notes: list[str]) -> dict[str, Tensor]:
    """The state dict in a checkpoint object: the object itself or one under a WRAPPER_KEYS entry."""
    trail = []
    while True:
        if isinstance(obj, nn.Module):
            trail.append(f" (pickled {type(obj).__name__})")
            obj = obj.state_dict()
        if isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
            if trail:
                notes.append(f"weights taken from checkpoint{''.join(trail)}")
            return {str(k): v for k, v in obj.items()}
        wrappers = [k for k in WRAPPER_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), (Mapping, nn.Module))]
        if not wrappers:
            raise CheckpointError(
                f"{path}: no state dict found: expected a dict of tensors or one under "
                f"{'/'.join(WRAPPER_KEYS)}, got {_describe(obj)}"
            )
        trail.append(f"[{wrappers[0]!r}]")
        if len(wrappers) > 1:
            why = _PREFERRED_BECAUSE.get(wrappers[0], f"{wrappers[0]!r} comes first in the order {'/'.join(WRAPPER_KEYS)}")
            notes.append(f"checkpoint also holds {', '.join(map(repr, wrappers[1:]))}, not used: {why}")
        obj = obj[wrappers[0]]


# --------------------------------------------------------------------------- cleaning keys


def _without_wrappers(key: str) -> str:
    """``key`` without any leading WRAPPER_PREFIXES (repeatedly)."""
    while prefix := next((p for p in WRAPPER_PREFIXES if key.startswith(p)), None):
        key = key[len(prefix):]
    return key


def _head_name(key: str) -> str:
    """First component of ``key`` (dot-separated)."""
    return key.split(".", 1)[0]


def _counted(counts: Counter[str]) -> str:
    """``projector: 4, queue: 2``."""
    return ", ".join(f"{name}: {n}" for name, n in counts.most_common())


def _clean(state: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    """Drop training-only parts (projector, queue, momentum encoder...) and strip wrapper prefixes.

    The wrapper prefix chain common to all backbone keys is stripped (so a ViT's own
    ``encoder.layers`` keys survive); head and training-part keys lose their own wrappers.
    """
    plain = {k: _without_wrappers(k) for k in state}
    dropped = Counter(_head_name(p) for p in plain.values() if _TRAINING_PART.search(_head_name(p)))
    kept = [k for k, p in plain.items() if not _TRAINING_PART.search(_head_name(p))]
    core = [k for k in kept if _head_name(plain[k]) not in HEAD_NAMES] or kept
    prefix = ""
    while core and (p := next((p for p in WRAPPER_PREFIXES if all(k.startswith(prefix + p) for k in core)), None)):
        prefix += p
    if prefix:
        notes.append(f"stripped key prefix {prefix!r}")
    if dropped:
        notes.append(f"dropped {sum(dropped.values())} training-only keys ({_counted(dropped)})")
    return {k[len(prefix):] if k.startswith(prefix) else plain[k]: state[k] for k in kept}


def _backbone_part(state: dict[str, Tensor], signature: dict[str, tuple[int, ...]]) -> tuple[dict[str, Tensor], Counter[str]]:
    """``state`` without the classifier-head keys that the backbone lacks; also their counts by head name."""
    head = [k for k in state if _head_name(k) in HEAD_NAMES and k not in signature]
    return {k: v for k, v in state.items() if k not in head}, Counter(_head_name(k) for k in head)


def _matches(state: dict[str, Tensor], arch: str) -> bool:
    """True if the backbone part of ``state`` has exactly the keys and shapes of ``arch``.

    BatchNorm ``num_batches_tracked`` counters may be absent (load_state_dict fills them in).
    """
    signature = arch_signature(arch)
    body, _ = _backbone_part(state, signature)
    required = {k for k in signature if k in body or not k.endswith("num_batches_tracked")}
    return body.keys() == required and all(tuple(v.shape) == signature[k] for k, v in body.items())


def _stored_arch(obj: Any) -> str | None:
    """The architecture name a checkpoint stores (``arch`` or ``hyper_parameters.arch``)."""
    if not isinstance(obj, Mapping):
        return None
    hparams = obj.get("hyper_parameters")
    arch = obj.get(milestones.ARCH, hparams.get(milestones.ARCH) if isinstance(hparams, Mapping) else None)
    return arch if isinstance(arch, str) else None


def _natural_order(name: str) -> list[str | int]:
    """Sort key comparing digit runs as numbers: resnet18 < resnet50 < resnet101."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _detect_arch(state: dict[str, Tensor], obj: Any, path: Path, notes: list[str]) -> str:
    """Registry entry whose backbone keys and shapes equal the checkpoint's (stored ``arch`` first)."""
    stored = _stored_arch(obj)
    if stored in registry() and _matches(state, stored):
        notes.append(f"arch from checkpoint: {stored}")
        return stored
    if stored:
        known = "does not match the weights" if stored in registry() else "is not in the registry"
        notes.append(f"stored arch {stored!r} {known}; detecting from the weights")
    # Registry signatures are pairwise distinct, so the first exact match is the only one; smaller
    # models (resnet18 before resnet101) come first in natural order and are faster to build.
    candidates = (
        n for n in sorted(registry(), key=_natural_order)
        if registry()[n].prefilter_key is None or registry()[n].prefilter_key in state
    )
    found = next((n for n in candidates if _matches(state, n)), None)
    if found is None:
        raise CheckpointError(
            f"{path}: no registry architecture matches its {len(state)} weights "
            f"(first keys: {_listing(list(state))}); give its arch", param="arch"
        )
    notes.append(f"arch auto-detected: {found}")
    return found


def _load_weights(model: nn.Module, arch: str, state: dict[str, Tensor], path: Path, notes: list[str]) -> None:
    """Copy the backbone weights of ``state`` into ``model``; CheckpointError if any is missing or foreign."""
    signature = arch_signature(arch)
    body, heads = _backbone_part(state, signature)
    if heads:
        notes.append(f"dropped {sum(heads.values())} classifier-head keys ({_counted(heads)})")
    wrong = [f"{k} {tuple(v.shape)} vs {signature[k]}" for k, v in body.items() if k in signature and tuple(v.shape) != signature[k]]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} weights have the wrong shape for {arch}: {_listing(wrong)}; wrong arch?", param="arch")
    result = model.load_state_dict(body, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} {arch} backbone weights missing: {_listing(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} keys not in {arch}: {_listing(result.unexpected_keys)}")
    if problems:
        raise CheckpointError(f"{path}: {'; '.join(problems)}; wrong arch?", param="arch")


def _triple(value: Any) -> tuple[float, float, float] | None:
    """3 per-channel floats from a list / tuple / tensor of 1 or 3 numbers; None if malformed."""
    try:
        values = [float(v) for v in torch.as_tensor(value, dtype=torch.float64).flatten().tolist()]
    except (TypeError, ValueError, RuntimeError):
        return None
    if len(values) == 1:
        values *= 3
    return (values[0], values[1], values[2]) if len(values) == 3 else None


def _stored_normalization(obj: Any, path: Path) -> tuple[tuple[float, float, float] | None, tuple[float, float, float] | None]:
    """``mean``/``std`` stored at the top level or under ``normalization``; (None, None) if absent."""
    if not isinstance(obj, Mapping):
        return None, None
    keys = (milestones.MEAN, milestones.STD)
    source = obj if all(k in obj for k in keys) else obj.get(milestones.NORMALIZATION)
    if not isinstance(source, Mapping) or not all(k in source for k in keys):
        return None, None
    mean, std = (_triple(source[k]) for k in keys)
    if mean is None or std is None:
        raise CheckpointError(f"{path}: stored mean/std must be 1 or 3 numbers each")
    return mean, std


# --------------------------------------------------------------------------- loaders


def _load_torchscript(path: Path, trust: bool, device: str | torch.device) -> Encoder:
    """A TorchScript archive as saved: its forward output is taken as the embedding."""
    if not trust:
        raise CheckpointError(
            f"{path}: TorchScript archive, whose loading can run code stored in it; "
            "allow it with trust_checkpoints if you trust this file", param="trust_checkpoints"
        )
    try:
        with warnings.catch_warnings():  # its deprecation notice is not the user's to act on
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch.jit.load raises RuntimeError subclasses from C++
        raise CheckpointError(f"{path}: unreadable TorchScript archive ({_reason(e)})") from e
    return Encoder(
        name=path.name, model=model.to(device).eval(), arch="torchscript", path=str(path),
        epoch=parse_epoch(path), mean=None, std=None, input_size=None,
        notes=["TorchScript archive: architecture and output taken as saved"],
    )


def load_checkpoint(
    path: str | os.PathLike[str], arch: str = "auto", trust: bool = False, device: str | torch.device = "cpu"
) -> Encoder:
    """Backbone of a checkpoint file (.pt .pth .ckpt .bin .safetensors or TorchScript).

    ``arch="auto"`` uses the checkpoint's stored ``arch`` or the registry entry whose keys and
    shapes match exactly. ``trust`` allows full unpickling (and TorchScript), which can run
    code from the file. Raises ValueError for an unknown ``arch``, CheckpointError otherwise.
    """
    if arch != "auto":
        check_arch(arch)
    path = Path(path)
    try:
        check_regular_file(path)
    except InputError as e:
        raise CheckpointError(str(e)) from None
    if _is_torchscript(path):
        return _load_torchscript(path, trust, device)
    obj = _read(path, trust)
    notes: list[str] = []
    state = _clean(_state_dict_of(obj, path, notes), notes)
    if arch == "auto":
        arch = _detect_arch(state, obj, path, notes)
    model = build_arch(arch)
    _load_weights(model, arch, state, path, notes)
    mean, std = _stored_normalization(obj, path)
    if mean is not None:
        notes.append(f"normalisation from checkpoint: mean {mean}, std {std}")
    return Encoder(
        name=path.name, model=model.to(device).eval(), arch=arch, path=str(path),
        epoch=parse_epoch(path, obj), mean=mean, std=std, input_size=milestones.stored_input_size(obj), notes=notes,
        training=milestones.stored_training(obj),
    )


def _cached_weights_file(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torch.hub keeps ``weights``: ``<torch.hub.get_dir()>/checkpoints/<url basename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


@contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Within the block, every torch.load is weights-only (torch's TORCH_FORCE_WEIGHTS_ONLY_LOAD).

    torchvision reads its hub cache with ``weights_only=False``; a cached file is data the
    user placed there, so it gets the same safe unpickling as checkpoints. That the variable
    overrides an explicit ``weights_only=False`` is documented for recent torch releases
    (tested here on 2.14); old ones may ignore it.
    """
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def offline() -> bool:
    """True when the environment turns downloads off (SSLMON_OFFLINE set to 1, true or yes)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def _download_weights(name: str, weights: torchvision.models.WeightsEnum, cached: Path, progress: bool) -> None:
    """Fetch ``weights`` into torch.hub's cache with torchvision's own API, SHA-256 checked against the
    hash prefix in the file name; the file is unpickled weights-only to check it. torch.hub writes to a
    temporary file in the cache folder and renames it into place only when the hash matches."""
    try:
        with redirect_stdout(sys.stderr):  # torch.hub announces downloads on stdout, which carries results
            weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except Exception as e:  # URLError, HTTPError, hash mismatch (RuntimeError), UnpicklingError, disk full...
        if isinstance(e, pickle.UnpicklingError):  # downloaded, hash right, but not plain weights: do not keep it
            cached.unlink(missing_ok=True)
        raise CheckpointError(
            f"{name}: download of {cached.name} from {weights.url} failed ({_reason(e)}); put the file into "
            f"{cached.parent}/ by hand or use `weights=\"none\"`", param="weights"
        ) from e


def _check_cached_weights(name: str, cached: Path) -> None:
    """CheckpointError unless ``cached`` is a regular file whose SHA-256 starts with the hash prefix in its name
    (torchvision's ``<name>-<prefix>.pth``; torch.hub checks it only while downloading, with ``check_hash``)."""
    from sslmon.io.output import file_digest

    try:
        check_regular_file(cached, "weights file")
        digest = file_digest(cached)
    except InputError as e:
        raise CheckpointError(str(e), param="weights") from None
    except OSError as e:
        raise CheckpointError(f"{cached}: cannot read ({(e.strerror or type(e).__name__).lower()})", param="weights") from None
    prefix = m.group(1) if (m := torch.hub.HASH_REGEX.search(cached.name)) else ""
    if not digest.startswith(prefix):
        raise CheckpointError(
            f"{name}: cached weights {cached} do not match the hash in their name (SHA-256 {digest[:len(prefix)]}..., "
            f"name says {prefix}): a corrupt or replaced file; delete it to download it again, or use `weights=\"none\"`",
            param="weights")


def load_torchvision(
    name: str,
    weights: str = "default",
    device: str | torch.device = "cpu",
    download: bool | None = None,
    progress: bool | None = None,
) -> Encoder:
    """torchvision classification model ``name`` as a backbone (classifier = identity).

    ``weights``: ``"default"`` (the model's DEFAULT weights), ``"none"`` (random init; seed
    beforehand) or a weights member name such as ``"IMAGENET1K_V2"``. Pretrained weights are
    read from torch.hub's cache (``$TORCH_HOME/hub/checkpoints``) with weights-only unpickling.
    When absent they are downloaded there through torchvision's API (hash checked) if ``download``
    (None: unless SSLMON_OFFLINE=1), with a progress bar on stderr if ``progress`` (None: when
    stderr is a terminal); else CheckpointError at once, naming the file, folder and URL.
    Preprocessing (mean, std, input size = crop size) comes from the weights' transforms, the
    DEFAULT ones for ``"none"``.
    """
    check_arch(name, torchvision.models.list_models(module=torchvision.models))
    enum = torchvision.models.get_model_weights(name)
    if weights in ("default", "none"):
        chosen = enum.DEFAULT if weights == "default" else None
    else:
        try:
            chosen = enum.verify(weights)
        except KeyError:
            members = ", ".join(m.name for m in enum)
            raise ValueError(f"{name}: unknown weights {weights!r}; use default, none or one of {members}") from None
    preset = (chosen or enum.DEFAULT).transforms()
    notes = [f"preprocessing of {chosen or enum.DEFAULT}: resize to {preset.crop_size[0]} px, its mean/std"]
    if chosen is None:
        # A ViT's position embeddings fix its input size: build it for the DEFAULT weights' size.
        vit = torchvision_family(name) == "vision_transformer"
        model = torchvision_backbone(name, None, **({"image_size": preset.crop_size[0]} if vit else {}))
        notes.insert(0, "random init (weights none)")
    else:
        cached = _cached_weights_file(chosen)
        if os.path.lexists(cached):
            _check_cached_weights(name, cached)
        else:
            if not (download if download is not None else not offline()):
                raise CheckpointError(
                    f"{name}: pretrained weights not cached and downloads are off (offline or {OFFLINE_ENV}=1); "
                    f"put {cached.name} into {cached.parent}/ (from {chosen.url}) or use `weights=\"none\"`", param="weights"
                )
            _download_weights(name, chosen, cached, sys.stderr.isatty() if progress is None else progress)
            notes.append(f"downloaded from {chosen.url} (SHA-256 prefix checked)")
        try:
            with _weights_only_loads():
                model = torchvision_backbone(name, chosen)
        except pickle.UnpicklingError as e:
            raise CheckpointError(f"{cached}: not a plain weights file ({_reason(e)})") from e
        except Exception as e:  # corrupt files, state dicts that do not fit the model
            raise CheckpointError(
                f"{name}: cannot load pretrained weights {chosen} ({_reason(e)}); put "
                f"{cached.name} into {cached.parent}/ (from {chosen.url}) or use `weights=\"none\"`", param="weights"
            ) from e
        notes.insert(0, f"pretrained weights {chosen} from {cached}")
    return Encoder(
        name=name, model=model.to(device).eval(), arch=name, path=None,
        epoch=0 if chosen is None else None,
        mean=_triple(preset.mean), std=_triple(preset.std), input_size=int(preset.crop_size[0]), notes=notes,
    )
