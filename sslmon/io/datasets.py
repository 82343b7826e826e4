"""Image datasets for embedding evaluation.

`load_dataset(spec)` returns an `ImageSet`: uint8 images (n, C, H, W) with C = 1 (grayscale) or 3 (RGB),
optional integer labels, an optional labelled train split (for kNN / linear probes) and the per-channel
mean/std of the evaluation images in [0, 1] units.

Specs (scheme names are case-insensitive):
  None, "default"        the Fashion-MNIST copy embedded in the package (10k test split + 10k stratified train subset)
  "fashion-mnist[:DIR]"  the four Fashion-MNIST idx files (gzipped or not); without DIR the Debian folder
                         /usr/share/datasets/fashion-mnist (package dataset-fashion-mnist)
  "cifar10:DIR"          CIFAR-10 python batches; DIR holds `cifar-10-batches-py` or is that folder
  "cifar100:DIR"         CIFAR-100 python pickles (fine labels); DIR holds `cifar-100-python` or is that folder
  "imagefolder:DIR"      DIR/<class>/<image> (labelled) or DIR/<image> (unlabelled); no train split
  "npz:FILE"             arrays `images` (+ optional `labels`, `train_images`, `train_labels`, `classes`)

Dataset files are untrusted data. CIFAR batches are Python pickles: they are read with a restricted
unpickler that resolves only the globals a real batch references (numpy's array reconstructor, ndarray,
dtype and scalar; the bytes helpers of Python 3's protocol 2), each to an inert stand-in from which the
arrays are rebuilt after checking dtype (booleans, integers, floats), shape and byte count; any other
global is refused with a one-line DatasetError naming the option `trust_data`. `trust_data=True` allows full
unpickling (which can run code).
npz files are read without unpickling, idx headers and npy headers are checked against the bytes present
and against MAX_ARRAY_BYTES before allocating, images are refused above MAX_IMAGE_PIXELS pixels, and only
regular files are opened (a FIFO or device would block or never end).
"""

from __future__ import annotations

import gzip
import math
import pickle
import warnings
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sslmon._text import one_line
from sslmon.errors import SslmonError
from sslmon.io.inputs import MAX_ARRAY_BYTES, InputError, check_regular_file, read_npz
from sslmon.io.safe_pickle import CifarUnpickler, RefusedGlobal, materialize


class DatasetError(SslmonError):
    """A dataset cannot be read; the one-line message names the file or folder and the problem."""


@dataclass
class ImageSet:
    """Images to embed, with optional labels and an optional labelled train split.

    `images`/`train_images` are uint8 tensors (n, C, H, W), C = 1 or 3, pixel values 0..255.
    `labels`/`train_labels` are int64 arrays (n,) of class indices >= 0, or None when unknown.
    `mean`/`std` are the per-channel mean and population standard deviation of `images` in [0, 1]
    units, always 3 values (a grayscale channel is repeated): the fallback input normalisation.
    """

    name: str
    images: torch.Tensor
    labels: np.ndarray | None
    train_images: torch.Tensor | None
    train_labels: np.ndarray | None
    classes: list[str] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int | None:
        """len(classes) when known, else 1 + the largest label of either split, else None (unlabelled)."""
        if self.classes is not None:
            return len(self.classes)
        present = [y for y in (self.labels, self.train_labels) if y is not None and y.size]
        return 1 + max(int(y.max()) for y in present) if present else None


SCHEMES = ("default", "fashion-mnist", "cifar10", "cifar100", "imagefolder", "npz")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# idx type code (third magic byte) -> big-endian element dtype, per the MNIST/idx format description.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IMAGE_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold (about 0.25 GiB of 24-bit RGB)


def folder_spec(spec: str | None) -> str | None:
    """``spec``, or ``imagefolder:SPEC`` when it names an existing folder and is not a ``scheme:...`` spec (so
    ``--dataset ./images`` means ``imagefolder:./images``)."""
    if spec is None or spec.strip().partition(":")[0].lower() in SCHEMES or not Path(spec).expanduser().is_dir():
        return spec
    return f"imagefolder:{spec}"


def load_dataset(
    spec: str | None = None,
    limit: int | None = None,
    train_limit: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    trust_data: bool = False,
) -> ImageSet:
    """Load the dataset named by `spec` (see the module docstring).

    `limit`/`train_limit`: keep a seeded subset of that many evaluation/train items, stratified by label
    when labelled (see `subset_indices`); None or >= the split size keeps everything.
    `image_size`: side in pixels of the square images decoded from an image folder (shorter side resized
    to it, then center-cropped; None: the images' native size, :func:`native_size`); other sources keep their
    native size.
    `trust_data`: read CIFAR pickles with full unpickling (can run code stored in them).
    Raises DatasetError for unreadable or malformed data, ValueError for a limit < 1.
    """
    for value, what in ((limit, "limit"), (train_limit, "train_limit")):
        if value is not None and value < 1:
            raise ValueError(f"{what} must be >= 1, got {value}")
    spec = folder_spec(spec)
    scheme, _, arg = ("default" if spec is None else spec.strip()).partition(":")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise DatasetError(f"unknown dataset scheme {scheme!r} in {spec!r} (and not an existing folder); valid: {', '.join(SCHEMES)}, "
                           "or a folder of images")
    if scheme == "default":
        if arg:
            raise DatasetError(f"dataset spec {spec!r}: 'default' takes no argument")
        ref = resources.files("sslmon").joinpath("data/fashion_mnist.npz")
        with resources.as_file(ref) as path:
            return _load_npz(path, "fashion-mnist (embedded)", limit, train_limit, seed)
    if scheme == "fashion-mnist" and not arg:
        if not DEBIAN_FASHION_MNIST.is_dir():
            raise DatasetError(
                f"{DEBIAN_FASHION_MNIST}: folder not found; install the Debian package dataset-fashion-mnist "
                "or pass fashion-mnist:DIR"
            )
        arg = str(DEBIAN_FASHION_MNIST)
    if not arg:
        raise DatasetError(f"dataset spec {spec!r}: {scheme} needs a path, e.g. {scheme}:/data/{scheme}")
    path = Path(arg).expanduser()
    name = f"{scheme}:{arg}"
    if scheme == "npz":
        return _load_npz(path, name, limit, train_limit, seed)
    if scheme == "imagefolder":
        return _load_imagefolder(path, name, limit, seed, image_size)
    if scheme == "fashion-mnist":
        splits = _read_fashion_mnist(path)
    else:
        splits = _read_cifar(path, scheme, trust_data)
    return _make_image_set(name, *splits, limit=limit, train_limit=train_limit, seed=seed)


def subset_indices(n: int, labels: np.ndarray | None, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of `size` out of `n` items; None when size is None or >= n.

    With labels the subset is stratified: class k gets floor(size * n_k / n) items plus one for the
    classes with the largest remainders (ties to the lower label) so the sizes add up to `size`, i.e.
    every class proportion is kept to within one item (as sklearn's train_test_split(stratify=...)).
    Items within a class are drawn without replacement by numpy's default_rng(seed): deterministic.
    """
    if size is None or size >= n:
        return None
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=size, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * size / n
    take = np.floor(quotas).astype(np.int64)
    by_remainder = np.argsort(-(quotas - take), kind="stable")
    take[by_remainder[: size - int(take.sum())]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == k), size=t, replace=False) for k, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not (detected by content), into a native-endian array.

    Layout: 2 zero bytes, a type code (0x08 uint8 ... 0x0E float64), the number of dimensions d,
    d big-endian uint32 sizes, then the elements big-endian in row-major order; the size must match exactly.
    The header is checked before the data is read: at most MAX_ARRAY_BYTES + 1 bytes are ever decompressed.
    """
    path = Path(path)
    _check_file(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if gzipped else raw as f:
                head = f.read(4)
                if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES:
                    raise DatasetError(f"{path}: not an idx file (bad magic number {head.hex() or 'empty'})")
                dims = f.read(4 * head[3])
                if len(dims) < 4 * head[3]:
                    raise DatasetError(f"{path}: truncated idx header")
                shape = tuple(int(s) for s in np.frombuffer(dims, ">u4"))
                dtype = np.dtype(_IDX_DTYPES[head[2]])
                expected = math.prod(shape) * dtype.itemsize
                if expected > MAX_ARRAY_BYTES:
                    raise DatasetError(f"{path}: idx header claims shape {shape}, {expected} bytes, above the "
                                       f"limit of {MAX_ARRAY_BYTES}")
                if not gzipped and expected > (left := path.stat().st_size - 4 - len(dims)):
                    raise DatasetError(f"{path}: idx header claims shape {shape}, {expected} bytes, but the file "
                                       f"holds {left}")
                data = f.read(expected + 1)
    except (OSError, EOFError, zlib.error, MemoryError) as e:
        raise DatasetError(f"{path}: cannot read idx file ({one_line(e)})") from None
    if len(data) != expected:
        raise DatasetError(f"{path}: idx data has {len(data)}{'+' if len(data) > expected else ''} bytes, "
                           f"its header {shape} implies {expected}")
    return np.frombuffer(data, dtype, count=math.prod(shape)).reshape(shape).astype(dtype.newbyteorder("="))


def _check_file(path: Path) -> None:
    """DatasetError unless `path` is a regular file (see inputs.check_regular_file)."""
    try:
        check_regular_file(path)
    except InputError as e:
        raise DatasetError(str(e)) from None


_Split = tuple[np.ndarray, np.ndarray | None]


def _read_fashion_mnist(folder: Path) -> tuple[_Split, _Split, list[str]]:
    """(test images (n,28,28), labels), (train images, labels), class names from the idx files in `folder`."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: fashion-mnist folder not found")

    def split(prefix: str) -> _Split:
        images_file = _idx_file(folder, f"{prefix}-images-idx3-ubyte")
        images = read_idx(images_file)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise DatasetError(f"{images_file}: expected uint8 images (n,H,W), got {images.dtype}{images.shape}")
        labels_file = _idx_file(folder, f"{prefix}-labels-idx1-ubyte")
        labels = read_idx(labels_file)
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(f"{labels_file}: expected {len(images)} labels (n,), got shape {labels.shape}")
        return images, _check_labels(labels, labels_file)

    return split("t10k"), split("train"), FASHION_MNIST_CLASSES


def _idx_file(folder: Path, stem: str) -> Path:
    """`folder/stem.gz` or `folder/stem`, whichever exists."""
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.exists():
            return path
    raise DatasetError(f"{folder / stem}: idx file not found (.gz or uncompressed)")


def _read_cifar(root: Path, scheme: str, trust: bool) -> tuple[_Split, _Split, list[str] | None]:
    """(test, train) splits with images (n,3,32,32) and class names (None without the meta file).

    Each pickle holds b"data", a uint8 array (n, 3072) whose rows are the R, G and B planes of a
    32x32 image, each plane row-major, and b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100).
    `trust`: full unpickling instead of the restricted one (see the module docstring).
    """
    sub, train_files, test_file, meta_file, label_key, names_key = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                    "batches.meta", b"labels", b"label_names"),
        "cifar100": ("cifar-100-python", ["train"], "test", "meta", b"fine_labels", b"fine_label_names"),
    }[scheme]
    if not root.is_dir():
        raise DatasetError(f"{root}: {scheme} folder not found")
    folder = root / sub if (root / sub).is_dir() else root
    if not (folder / test_file).exists():
        raise DatasetError(f"{folder}: no {scheme} batches found (expected {sub}/{test_file} or {test_file})")

    def split(files: list[str]) -> _Split:
        parts = [_read_cifar_batch(folder / f, label_key, trust) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    classes = None
    if (folder / meta_file).exists():
        names = _unpickle(folder / meta_file, trust).get(names_key)
        if not isinstance(names, list):
            raise DatasetError(f"{folder / meta_file}: no {names_key!r} list")
        classes = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]
    return split([test_file]), split(train_files), classes


def _read_cifar_batch(path: Path, label_key: bytes, trust: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (n,3,32,32) uint8 and int64 labels of one CIFAR pickle."""
    batch = _unpickle(path, trust)
    data, labels = batch.get(b"data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype}{data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: b'data' must be a uint8 array (n, 3072), got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise DatasetError(f"{path}: {label_key!r} missing or not one label per row of b'data'")
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as e:
        raise DatasetError(f"{path}: {label_key!r} is not a list of integers ({one_line(e)})") from None
    if y.ndim != 1:
        raise DatasetError(f"{path}: {label_key!r} is not a flat list of integers")
    return data.reshape(-1, 3, 32, 32), _check_labels(y, path)


def _unpickle(path: Path, trust: bool) -> dict:
    """The dict in a CIFAR pickle (byte-string keys); restricted unpickling unless `trust`."""
    _check_file(path)
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's notes on old pickles are not the user's to act on
            if trust:
                obj = pickle.Unpickler(f, encoding="bytes").load()
            else:
                obj = materialize(CifarUnpickler(f, encoding="bytes").load())
    except RefusedGlobal as e:
        raise DatasetError(
            f"{path}: pickle references {e}, which a CIFAR batch never holds and which can run code; "
            "allow it with trust_data if you trust this file", param="trust_data"
        ) from None
    except Exception as e:  # a corrupt pickle can raise nearly any exception type
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {one_line(e)})") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: pickle holds a {type(obj).__name__}, expected a dict")
    return obj


def _load_npz(path: Path, name: str, limit: int | None, train_limit: int | None, seed: int) -> ImageSet:
    """An ImageSet from an .npz archive; see `_npz_images` for the accepted image layouts."""
    try:
        arrays, _ = read_npz(path)
    except InputError as e:
        raise DatasetError(str(e)) from None
    if "images" not in arrays:
        raise DatasetError(f"{path}: no 'images' array (has: {', '.join(arrays) or 'nothing'})")
    images = _npz_images(arrays["images"], path, "images")
    labels = _npz_labels(arrays.get("labels"), len(images), path, "labels")
    train = None
    if "train_images" in arrays or "train_labels" in arrays:
        if "train_images" not in arrays or "train_labels" not in arrays:
            raise DatasetError(f"{path}: 'train_images' and 'train_labels' must come together")
        train_images = _npz_images(arrays["train_images"], path, "train_images")
        if train_images.shape[1:] != images.shape[1:]:
            raise DatasetError(
                f"{path}: train_images are {train_images.shape[1:]} per image but images are {images.shape[1:]}"
            )
        train = train_images, _npz_labels(arrays["train_labels"], len(train_images), path, "train_labels")
    classes = [str(c) for c in np.ravel(arrays["classes"])] if "classes" in arrays else None
    return _make_image_set(name, (images, labels), train, classes, limit, train_limit, seed)


def _npz_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """uint8 (n, C, H, W) from (n,H,W), (n,H,W,C) or (n,C,H,W) with C in {1, 3}; floats must lie in [0, 1].

    When both axis 1 and axis 3 could be channels, (n, C, H, W) is assumed.
    """
    if np.issubdtype(x.dtype, np.floating) and x.size:
        if not (x.min() >= 0.0 and x.max() <= 1.0):  # also rejects NaN
            raise DatasetError(f"{path}: float {key!r} must lie in [0, 1], got [{x.min()}, {x.max()}]")
        x = np.rint(x * 255.0).astype(np.uint8)
    if x.dtype != np.uint8:
        raise DatasetError(f"{path}: {key!r} must be uint8 or float in [0, 1], got {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise DatasetError(f"{path}: {key!r} has shape {x.shape}, expected non-empty (n,H,W), (n,H,W,C) "
                           "or (n,C,H,W) with C = 1 or 3")
    return np.ascontiguousarray(x)


def _npz_labels(y: np.ndarray | None, n: int, path: Path, key: str) -> np.ndarray | None:
    """int64 (n,) labels from an npz array, or None when absent."""
    if y is None:
        return None
    if y.shape != (n,):
        raise DatasetError(f"{path}: {key!r} has shape {y.shape}, expected ({n},)")
    return _check_labels(y, path)


def _check_labels(y: np.ndarray, path: Path) -> np.ndarray:
    """`y` as int64 after checking it holds integers >= 0."""
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise DatasetError(f"{path}: labels must be integers >= 0, got {y.dtype}")
    return y.astype(np.int64)


def native_size(files: list[Path]) -> int:
    """The images' native size: the median of their shorter sides (pixels), read from the file headers (a file
    whose header cannot be read is left out here and reported when it is decoded); 224 when none can be read."""
    sides = []
    for path in files:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return int(np.median(sides)) if sides else 224


def _load_imagefolder(folder: Path, name: str, limit: int | None, seed: int, image_size: int | None) -> ImageSet:
    """Images of DIR/<class>/**/<image> (labels: sorted class folders) or, without class folders,
    DIR/<image> (unlabelled), as RGB image_size x image_size (shorter side resized, center-cropped); ``image_size``
    None: their native size (:func:`native_size`), so 28-px images stay 28 px.

    The subset for `limit` is drawn from the file list before decoding, so only kept images are read.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = [(d.name, sorted(p for p in d.rglob("*") if _is_image(p))) for d in class_dirs]
    per_class = [(c, files) for c, files in per_class if files]
    if per_class:
        classes: list[str] | None = [c for c, _ in per_class]
        files = [f for _, fs in per_class for f in fs]
        labels: np.ndarray | None = np.repeat(np.arange(len(per_class)), [len(fs) for _, fs in per_class])
    else:
        classes, labels = None, None
        files = sorted(p for p in folder.iterdir() if _is_image(p))
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it or its class sub-folders")
    keep = subset_indices(len(files), labels, limit, seed)
    if keep is not None:
        files = [files[i] for i in keep]
        labels = labels[keep] if labels is not None else None
    # torchvision's import costs seconds; only image folders need it.
    import torchvision.transforms.v2.functional as F

    image_size = image_size or native_size(files)
    images = torch.empty((len(files), 3, image_size, image_size), dtype=torch.uint8)
    for i, path in enumerate(files):
        rgb = _decode_image(path)
        square = F.center_crop(F.resize(rgb, [image_size]), [image_size, image_size])
        images[i] = F.pil_to_tensor(square)
    return ImageSet(name, images, labels, None, None, classes, *_mean_std(images))


def _decode_image(path: Path) -> Image.Image:
    """The image at `path` as RGB; DatasetError for a corrupt file or one above MAX_IMAGE_PIXELS pixels
    (checked from the header, before the pixels are decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below instead
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DatasetError(f"{path}: image of {im.width} x {im.height} pixels, above the limit of "
                                       f"{MAX_IMAGE_PIXELS} (a decompression bomb?)")
                return im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{path}: {one_line(e)}") from None
    except DatasetError:
        raise
    except Exception as e:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error ... on corrupt files
        raise DatasetError(f"{path}: cannot decode image ({type(e).__name__}: {one_line(e)})") from None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _make_image_set(
    name: str,
    test: _Split,
    train: _Split | None,
    classes: list[str] | None,
    limit: int | None,
    train_limit: int | None,
    seed: int,
) -> ImageSet:
    """Subset both splits, convert images to (n, C, H, W) uint8 tensors and compute mean/std."""

    def take(split: _Split, size: int | None) -> tuple[torch.Tensor, np.ndarray | None]:
        x, y = split
        keep = subset_indices(len(x), y, size, seed)
        if keep is not None:
            x, y = x[keep], (y[keep] if y is not None else None)
        x = x[:, None] if x.ndim == 3 else x
        return torch.from_numpy(np.ascontiguousarray(x)), y

    images, labels = take(test, limit)
    train_images, train_labels = take(train, train_limit) if train is not None else (None, None)
    return ImageSet(name, images, labels, train_images, train_labels, classes, *_mean_std(images))


def _mean_std(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std of uint8 (n, C, H, W) images in [0, 1] units, repeated to
    3 channels when C = 1; exact, from a 256-bin histogram per channel (no float copy of the images)."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = [], []
    for c in range(images.shape[1]):
        counts = sum(torch.bincount(chunk[:, c].flatten(), minlength=256) for chunk in images.split(4096))
        p = counts.double() / counts.sum()
        m = float((p * values).sum())
        mean.append(m)
        std.append(float((p * (values - m) ** 2).sum().sqrt()))
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])

