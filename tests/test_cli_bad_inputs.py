"""The CLI-level bad-input corpus: configs, option values and output targets.

Every case asserts the exit code, exactly one ``error:`` line naming the bad input, no
traceback, that the good input of the same run is still scored and reported where the run
goes ahead, and that no file outside the output folder ``out/`` was created, changed or removed.
The CLI runs in-process through the console-script entry point (``sslmon.cli.main``), on small
embedding files with cheap metrics (no UMAP).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from bad_files import BAD_CHECKPOINTS, BAD_EMBEDDINGS, RunsCode, Z, make_file, npz_bytes, small_state, y
from helpers import CHEAP_JSON, error_lines, rankme_by_hand, run_cli, snapshot
from sslmon.cli import app
from sslmon.io.runfile import to_json
from sslmon.results import Result, Run

FAST = ["--metrics", "rankme,l2_std"]


@dataclass
class Case:
    """One bad input: files to create (relative path -> bytes or text), the arguments, what must happen."""

    id: str
    args: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    code: int = 2
    names: str = ""  # text the error line must contain (the bad input)
    scored: bool = False  # the good input is still scored and reported (stdout, or out/ when -o works)


def _results_text(values: list[float], epoch_text: str | None = None) -> str:
    """A results document by sslmon's own writer: four epochs of rankme = ``values`` and lp_acc; ``epoch_text``
    replaces the last epoch's number (an integer of thousands of digits)."""
    text = to_json(Run({}, [Result(f"e{e}", None, {"rankme": v, "lp_acc": 0.1 * e}, epoch=e) for e, v in enumerate(values)]),
                   "lp_acc")
    return text if epoch_text is None else text.replace('"epoch": 3', f'"epoch": {epoch_text}')


def _z3_rows(*rows: list[float]) -> bytes:
    """A Z3 file of 20 normal points (seeded) whose first rows are ``rows``."""
    z3 = np.random.default_rng(0).normal(size=(20, 3))
    z3[: len(rows)] = rows
    return npz_bytes(z3=z3, epoch=np.int64(1))


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

CASES = [
    Case("config-unknown-key", ["--config", "{t}/c.yaml"], {"c.yaml": "no_such_option: 1\n"}, names="no_such_option"),
    Case("config-wrong-type-list", ["--config", "{t}/c.yaml"], {"c.yaml": "limit: [1, 2]\n"}, names="'limit'"),
    Case("config-wrong-type-str", ["--config", "{t}/c.yaml"], {"c.yaml": "seed: abc\n"}, names="'seed'"),
    Case("config-wrong-type-bool", ["--config", "{t}/c.yaml"], {"c.yaml": "k: true\n"}, names="'k'"),
    Case("config-out-of-range", ["--config", "{t}/c.yaml"], {"c.yaml": "seed: -5\n"}, names="'seed'"),
    Case("config-yaml-bomb", ["--config", "{t}/c.yaml"], {"c.yaml": BOMB}, names="alias"),
    Case("config-python-tag", ["--config", "{t}/c.yaml"],
         {"c.yaml": "seed: !!python/object/apply:os.system ['touch {t}/pwned']\n"}, names="c.yaml"),
    Case("config-binary", ["--config", "{t}/c.yaml"], {"c.yaml": b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01"}, names="c.yaml: not a text file"),
    Case("config-huge", ["--config", "{t}/c.yaml"], {"c.yaml": "# " + "x" * (1 << 20) + "\n"}, names="MiB"),
    Case("config-deep", ["--config", "{t}/c.yaml"], {"c.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n"}, names="nested"),
    Case("config-device-file", ["--config", "/dev/zero"], names="/dev/zero"),
    Case("config-not-mapping", ["--config", "{t}/c.yaml"], {"c.yaml": "- seed\n- 1\n"}, names="mapping"),
    Case("folder-trust", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "trust_checkpoints: true\n"}, names="trust_checkpoints"),
    Case("folder-output", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "output: {t}/stolen.json\n"}, names="'output'"),
    Case("folder-dataset", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "dataset: cifar10:{t}\n"}, names="'dataset'"),
    Case("folder-save-z3", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "save-z3: {t}/z3\n"}, names="'save-z3'"),
    Case("folder-no-cache", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "no_cache: true\n"}, names="'no_cache'"),
    Case("folder-config", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "config: {t}/c.yaml\n"}, names="'config'"),
    Case("seed-negative", ["--seed", "-1"], names="--seed"),
    Case("seed-huge", ["--seed", str(2**70)], names="--seed"),
    Case("device-unknown", ["--device", "tpu"], names="--device"),
    Case("output-directory", ["-o", "{t}/out"], names="{t}/out"),
    Case("output-proc", ["-o", "/proc/version"], names="/proc/version"),
    Case("output-under-a-file", ["-o", "{t}/good.npz/r.json"], names="good.npz is not a folder"),
    Case("output-is-an-input", ["-o", "{t}/good.npz"], names="is one of the inputs"),
    Case("output-full-disk", ["-o", "/dev/full", "-f", "json"], names="/dev/full", scored=True),
    Case("bad-input-next-to-good", ["{t}/corrupt.npz", "-o", "{t}/out/r.json"], {"corrupt.npz": b"PK\x03\x04garbage"},
         names="corrupt.npz", scored=True),
    Case("correlate-output-directory", ["correlate", "{t}/results.json", "-o", "{t}/out"], names="{t}/out"),
    Case("plot-key-with-slash", ["plot", "{t}/slash.json", "--out", "{t}/out/plots"], names="slash.json"),
    Case("plot-out-is-a-file", ["plot", "{t}/results.json", "--out", "{t}/out/taken"], {"out/taken": "x"}, names="out/taken"),
    Case("plot-z3-bad-epoch", ["plot", "{t}/results.json", "--out", "{t}/out/plots", "--z3", "{t}/z3"], names="x.z3.npz"),
    # issue 21: a folder's option file cannot make the run endless, nor can --config
    Case("folder-umap-epochs-huge", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "umap-epochs: 100000000\n"}, names="'umap-epochs': 100000000"),
    Case("folder-seeds-huge", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "seeds: 100000\n"}, names="'seeds': 100000 seeds"),
    Case("folder-limit-huge", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "limit: 100000000000\n"}, names="'limit'"),
    Case("folder-image-size-huge", ["{t}/ckpts"], {"ckpts/sslmon.yaml": "image-size: 100000\n"}, names="'image-size'"),
    Case("config-batch-size-huge", ["--config", "{t}/c.yaml"], {"c.yaml": "batch-size: 10000000\n"}, names="'batch-size'"),
    Case("config-seed-list-long", ["--config", "{t}/c.yaml"], {"c.yaml": f"seeds: {list(range(50))}\n"}, names="50 seeds"),
    # issue 21: names over 255 bytes, integers over Python's 4300 digits, values no axis can show, bad Z3 rows
    Case("output-name-too-long", ["-o", "{t}/out/" + "r" * 300 + ".json"], names="longer than the 255 bytes"),
    Case("correlate-integer-too-long", ["correlate", "{t}/digits.json"], {"digits.json": _results_text([1, 2, 4, 3], "9" * 5000)},
         names="digits.json: holds an integer of more than 4300 digits"),
    Case("plot-integer-too-long", ["plot", "{t}/digits.json", "--out", "{t}/out/plots"],
         {"digits.json": _results_text([1, 2, 4, 3], "9" * 5000)}, names="digits.json"),
    Case("plot-values-1e308", ["plot", "{t}/huge.json", "--out", "{t}/out/plots"], {"huge.json": _results_text([1e308, -1e308, 1, 2])},
         names="huge.json: metric rankme holds"),
    Case("plot-z3-rows-1e308", ["plot", "{t}/results.json", "--out", "{t}/out/plots", "--z3", "{t}/z3big"],
         {"z3big/a.z3.npz": _z3_rows([1e308, 0, 0], [-1e308, 0, 0])}, names="a.z3.npz: 2 of 20 z3 rows"),
    Case("plot-z3-rows-nan", ["plot", "{t}/results.json", "--out", "{t}/out/plots", "--z3", "{t}/z3nan"],
         {"z3nan/b.z3.npz": _z3_rows([np.nan, 0, 0])}, names="b.z3.npz: 1 of 20 z3 rows"),
    Case("plot-z3-empty", ["plot", "{t}/results.json", "--out", "{t}/out/plots", "--z3", "{t}/z3empty"],
         {"z3empty/c.z3.npz": npz_bytes(z3=np.zeros((0, 3)), epoch=np.int64(1))}, names="c.z3.npz: z3 holds no points"),
    Case("train-out-is-a-file", ["train", "simclr", "--out", "{t}/good.npz"], names="good.npz: is a file"),
]


def _results_doc(key: str) -> str:
    """A results document by sslmon's own writer: four epochs of ``key`` and lp_acc."""
    return to_json(Run({}, [Result(f"e{e}", None, {key: float(e), "lp_acc": 0.1 * e}, epoch=e) for e in range(4)]), "lp_acc")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_error_line_and_touches_nothing(case: Case, tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 8))
    np.savez(tmp_path / "good.npz", embeddings=Z, labels=np.arange(60) % 3)
    (tmp_path / "out").mkdir()
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "z3").mkdir()
    np.savez(tmp_path / "z3" / "x.z3.npz", z3=rng.normal(size=(10, 3)), epoch=np.array([1, 2]))
    (tmp_path / "results.json").write_text(_results_doc("rankme"))
    (tmp_path / "slash.json").write_text(_results_doc("../../escape/rankme"))
    for rel, content in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{t}", str(tmp_path)))
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(tmp_path / "out" / "cache"))
    monkeypatch.chdir(tmp_path / "out")
    args = [a.replace("{t}", str(tmp_path)) for a in case.args]
    if args[0] not in ("correlate", "plot", "train"):  # score: the good embedding file first, unless a folder is scored
        args = ["score", *([] if any(a.endswith("ckpts") for a in args) else [str(tmp_path / "good.npz")]), *args, *FAST]
    before = snapshot(tmp_path)

    code, out, err = run_cli(args, capsys, monkeypatch)

    assert code == case.code, err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert case.names.replace("{t}", str(tmp_path)) in errors[0]
    after = snapshot(tmp_path)
    outside = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not k.startswith("out")}
    assert outside == set()
    if case.scored:
        written = tmp_path / "out" / "r.json"
        doc = json.loads(written.read_text() if written.exists() else out)
        (record,) = doc["results"]
        assert record["name"] == "good"
        assert record["metrics"]["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-6)
        assert len(doc["failures"]) == len(case.files)  # the bad input, when the case adds one


def test_cli_bad_embedding_files_fail_alone(tmp_path, runner):
    good = tmp_path / "good.npz"
    np.savez(good, embeddings=Z, labels=y)
    bad = [make_file(tmp_path, *BAD_EMBEDDINGS[c]) for c in ("nan_float_labels", "directory", "huge_claim_npy", "fifo")]
    result = runner.invoke(app, ["score", str(good), *map(str, bad), *CHEAP_JSON])
    assert result.exit_code == 2
    errors = error_lines(result)
    assert len(errors) == len(bad) and all(str(p) in line for p, line in zip(bad, errors))
    doc = json.loads(result.stdout)
    assert [r["path"] for r in doc["results"]] == [str(good)] and doc["results"][0]["metrics"]["rankme"] is not None


def test_cli_bad_checkpoints_fail_alone_and_run_nothing(tmp_path, tiny_data, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ckpts"
    folder.mkdir()
    torch.save({"state_dict": small_state(2), "epoch": 2}, folder / "epoch_2.pt")
    nan_state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in small_state(3).items()}
    torch.save({"state_dict": nan_state, "epoch": 3}, folder / "epoch_3.pt")
    bad = [make_file(folder, *BAD_CHECKPOINTS[c]) for c in ("pickle_payload", "symlink_loop", "fifo", "unicode_name_with_spaces")]
    bad.append(folder / "loop_b.pt")  # the other end of the loop
    result = runner.invoke(app, ["score", str(folder), "--dataset", tiny_data, "--arch", "convnet-small", *CHEAP_JSON])
    assert result.exit_code == 2
    errors = error_lines(result)
    assert len(errors) == len(bad) and all(any(str(p) in line for line in errors) for p in bad), errors
    assert not (tmp_path / "pwned_by_checkpoint").exists()
    by_epoch = {r["epoch"]: r for r in json.loads(result.stdout)["results"]}
    assert by_epoch[2]["metrics"]["rankme"] is not None
    assert by_epoch[3]["metrics"]["rankme"] is None and "NaN" in by_epoch[3]["errors"]["rankme"]


def test_cli_code_running_cifar_batch_needs_trust_data(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        batch = {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 0, 1, 2]}
        if name == "data_batch_3":
            batch[b"batch_label"] = RunsCode("touch pwned_by_dataset")
        (folder / name).write_bytes(pickle.dumps(batch))
    torch.save({"state_dict": small_state(), "epoch": 1}, tmp_path / "epoch_1.pt")
    args = ["score", str(tmp_path / "epoch_1.pt"), "--dataset", f"cifar10:{tmp_path}", *CHEAP_JSON]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    (line,) = error_lines(refused)
    assert str(folder / "data_batch_3") in line and "--trust-data" in line
    assert not (tmp_path / "pwned_by_dataset").exists()
    trusted = runner.invoke(app, [*args, "--trust-data"])
    assert trusted.exit_code == 0, trusted.output
    assert (tmp_path / "pwned_by_dataset").exists()  # the flag is wired through: the payload ran
