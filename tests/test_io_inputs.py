"""sslmon.io.inputs: embedding files (.npz/.npy). A corpus of bad files (bad_files.BAD_EMBEDDINGS) each gives an
InputError with a one-line message naming the file; class-name labels; the header-checked readers equal numpy's."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bad_files import BAD_EMBEDDINGS, Z, make_file, y
from fuzzing import FUZZ, blobs, only_own_errors, written
from sslmon.io.inputs import InputError, load_embeddings


@pytest.mark.parametrize("case", BAD_EMBEDDINGS)
def test_bad_embedding_file_is_a_one_line_input_error(case, tmp_path):
    name, content = BAD_EMBEDDINGS[case]
    path = make_file(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        load_embeddings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_string_labels_are_class_names_numbered_in_sorted_order(tmp_path):
    names = np.array(["dog", "cat", "emu"])[y]
    train = np.array(["emu", "ant"])[np.arange(12) % 2]
    path = tmp_path / "named.npz"
    np.savez(path, embeddings=Z, labels=names, train_embeddings=Z, train_labels=train)
    loaded = load_embeddings(path)
    _, codes = np.unique(np.concatenate([names, train]), return_inverse=True)  # ant=0 cat=1 dog=2 emu=3
    assert (loaded.labels == codes[:12]).all() and (loaded.train_labels == codes[12:]).all()


@pytest.mark.parametrize("array", [
    np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.arange(6, dtype=">i4").reshape(2, 3),
    np.array([[True, False]]), np.zeros((0, 3), np.float16), np.array(["cat", "emu"]), np.float32(3.0),
], ids=["fortran", "big_endian", "bool", "empty", "strings", "scalar"])
def test_header_checked_reader_matches_numpy(array, tmp_path):
    """The header-checked readers return what numpy's own np.load returns, for .npy and (compressed) .npz."""
    from sslmon.io.inputs import read_npy, read_npz

    np.save(tmp_path / "a.npy", array)
    np.savez_compressed(tmp_path / "a.npz", x=array, y=np.arange(3))
    expected = np.load(tmp_path / "a.npy")
    for got in (read_npy(tmp_path / "a.npy"), read_npz(tmp_path / "a.npz", ["x"])[0]["x"]):
        assert got.dtype == expected.dtype and got.shape == expected.shape and (got == expected).all()
    assert read_npz(tmp_path / "a.npz", ["x"])[1] == ["x", "y"]


def embedding_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(10, 4)).astype(np.float32), np.arange(10) % 2
    out = []
    for save in (lambda f: np.save(f, Z), lambda f: np.savez(f, embeddings=Z, labels=y),
                 lambda f: np.savez_compressed(f, embeddings=Z, labels=y.astype(str), train_embeddings=Z, train_labels=y.astype(str))):
        buffer = io.BytesIO()
        save(buffer)
        out.append(buffer.getvalue())
    return out


@FUZZ
@given(content=blobs(embedding_seeds()), suffix=st.sampled_from([".npy", ".npz"]))
def test_fuzz_embedding_reader(content: bytes, suffix: str) -> None:
    with written(f"emb{suffix}", content) as path:
        only_own_errors(lambda: load_embeddings(path), InputError, path)


def test_fuzz_seeds_are_valid_embedding_files() -> None:
    """The unmutated seeds load (else the fuzzing would only ever reach the first error path)."""
    for i, seed in enumerate(embedding_seeds()):
        with written(f"emb.{'npy' if i == 0 else 'npz'}", seed) as path:
            assert load_embeddings(path).embeddings.shape == (10, 4)
