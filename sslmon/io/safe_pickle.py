"""The restricted unpickler for CIFAR python batches (untrusted data): it resolves only the globals a real batch
references (numpy's array reconstructor, ndarray, dtype and scalar; Python 3's protocol-2 bytes helpers), each to an
inert stand-in; :func:`materialize` rebuilds the arrays after checking dtype (booleans, integers, floats), shape and
byte count. Any other global raises :class:`RefusedGlobal`. No numpy code runs on pickled state."""

from __future__ import annotations

import math
import pickle

import numpy as np


class _DtypeSpec:
    """Stand-in for numpy.dtype in a restricted pickle: records the descriptor and the byte order of its
    state; numpy sees neither until `_plain_dtype` has checked them (a dtype's pickled state can set
    internal flags that numpy trusts)."""

    def __init__(self, descr: object, *_: object) -> None:
        self.descr, self.byteorder = descr, "|"

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) > 1:
            self.byteorder = state[1]


class _ArraySpec:
    """Stand-in for a numpy array in a restricted pickle: shape, dtype, order and raw bytes, turned into
    an array by `_array` after checking them."""

    def __init__(self, shape: object = None, dtype: object = None, fortran: object = False, data: object = None) -> None:
        self.shape, self.dtype, self.fortran, self.data = shape, dtype, fortran, data

    def __setstate__(self, state: object) -> None:  # ndarray's (version, shape, dtype, is_fortran, data)
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("malformed array state")
        _, self.shape, self.dtype, self.fortran, self.data = state


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _plain_dtype(spec: object) -> np.dtype:
    """A numpy dtype from a _DtypeSpec: booleans, integers and floats only."""
    if not isinstance(spec, _DtypeSpec) or not isinstance(spec.descr, (str, bytes)):
        raise pickle.UnpicklingError("array without a dtype")
    dtype = np.dtype(_text(spec.descr))
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"unsupported array dtype {dtype}")
    order = _text(spec.byteorder)
    return dtype.newbyteorder(order) if order in ("<", ">") else dtype


def _array(spec: _ArraySpec) -> np.ndarray:
    """The array an _ArraySpec describes, after checking that its bytes match its shape and dtype."""
    dtype = _plain_dtype(spec.dtype)
    shape = spec.shape
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
    data = spec.data.encode("latin-1") if isinstance(spec.data, str) else spec.data
    if not isinstance(data, (bytes, bytearray)) or len(data) != math.prod(shape) * dtype.itemsize:
        raise pickle.UnpicklingError(f"array data does not match its shape {shape} and dtype {dtype}")
    order = "F" if spec.fortran in (True, "F", b"F") else "C"
    return np.frombuffer(data, dtype).reshape(shape, order=order).copy()


def materialize(obj: object) -> object:
    """`obj` with every _ArraySpec inside dicts, lists and tuples replaced by its array; a _DtypeSpec
    left over anywhere (outside an array) becomes its dtype."""
    if isinstance(obj, _ArraySpec):
        return _array(obj)
    if isinstance(obj, _DtypeSpec):
        return _plain_dtype(obj)
    if isinstance(obj, dict):
        return {materialize(k): materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(materialize(v) for v in obj)
    return obj


def _scalar(dtype: object, data: object) -> _ArraySpec:
    """A pickled numpy scalar (numpy's ``scalar(dtype, raw bytes)``) as a 0-d array spec."""
    return _ArraySpec((), dtype, False, data)


def _latin1(text: object, encoding: object) -> bytes:
    """What Python 3 pickles bytes as at protocol 2: ``_codecs.encode(text, "latin1")``; no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode other than of text to latin1")
    return text.encode("latin-1")


# The globals a CIFAR python batch references, by (module, name) as pickled (numpy.core in numpy 1.x
# pickles, numpy._core in 2.x; _frombuffer at protocol 5; scalars; Python 3's protocol-2 bytes helpers;
# Python 2's __builtin__ unmapped), resolved to stand-ins: no numpy code runs on pickled state.
_CIFAR_GLOBALS: dict[tuple[str, str], object] = {
    **{(f"numpy{core}.multiarray", "_reconstruct"): lambda cls, shape, typecode: _ArraySpec() for core in (".core", "._core")},
    **{(f"numpy{core}.numeric", "_frombuffer"): lambda buf, dtype, shape, order: _ArraySpec(shape, dtype, order, bytes(buf))
       for core in (".core", "._core")},
    **{(f"numpy{core}.multiarray", "scalar"): _scalar for core in (".core", "._core")},
    ("numpy", "ndarray"): _ArraySpec, ("numpy", "dtype"): _DtypeSpec,
    # Python 3 pickles b"" at protocol 2 as bytes() with no argument: bytes(n) would allocate n bytes.
    ("_codecs", "encode"): _latin1, ("__builtin__", "bytes"): lambda: b"", ("builtins", "bytes"): lambda: b"",
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of _CIFAR_GLOBALS, to their stand-ins (see `materialize`)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR_GLOBALS:
            raise RefusedGlobal(f"{module}.{name}")
        return _CIFAR_GLOBALS[module, name]


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle references a global that a CIFAR batch never holds; the message is its dotted name."""
