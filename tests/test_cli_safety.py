"""Presentation safety (names shown literally, escaped, CSV cells defused), a cache that can be trusted,
--save-z3 collisions, broken symlinks. In-process through the console-script entry point."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from helpers import child_env, snapshot, sslmon_command, write_checkpoint

FAST = ["--metrics", "rankme,l2_std", "--arch", "convnet-small"]


# --------------------------------------------------------------------------- presentation


HOSTILE = ["[bold red]x", "[link=mailto:a@b.c]y", "=1+2", "@SUM(A1)", "line\nbreak\x1b[2J"]


def test_hostile_names_are_shown_literally_escaped_and_defused(tmp_path, cache_dir, cli):
    rng = np.random.default_rng(0)
    for name in HOSTILE:
        np.savez(tmp_path / f"{name}.npz", embeddings=rng.normal(size=(30, 5)), labels=np.arange(30) % 3)
    paths = [str(tmp_path / f"{name}.npz") for name in HOSTILE]
    code, out, err = cli("score", *paths, "--metrics", "rankme")
    assert code == 0, err
    assert "[bold red]x" in out and "[link=mailto:a@b.c]y" in out  # shown, not interpreted as markup
    assert "line\\nbreak\\x1b[2J" in out and "\x1b" not in out  # escaped in the table
    assert "line\\nbreak\\x1b[2J.npz" in err and "\x1b" not in err  # and in the stderr progress lines
    code, out, err = cli("score", *paths, "--metrics", "rankme", "-o", str(tmp_path / "r.csv"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text(), newline="")))
    assert sorted(r["name"] for r in rows) == sorted(["[bold red]x", "[link=mailto:a@b.c]y", "'=1+2", "'@SUM(A1)",
                                                      "line\nbreak\x1b[2J"])
    assert all(not r[col].startswith(("=", "+", "-", "@")) for r in rows for col in ("name", "path"))


def test_broken_symlink_in_a_folder_is_one_error_line_and_the_others_are_scored(tmp_path, tiny_data, cache_dir, cli):
    ckpts = tmp_path / "ckpts"
    write_checkpoint(ckpts / "epoch_0001.pt", 1)
    (ckpts / "epoch_0002.pt").symlink_to(tmp_path / "gone.pt")
    code, out, err = cli("score", str(ckpts), "--dataset", tiny_data, *FAST, "-q", "-f", "json")
    assert code == 2, err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "epoch_0002.pt" in error
    assert [r["name"] for r in json.loads(out)["results"]] == ["epoch_0001.pt"]


def test_folder_config_linked_from_outside_the_folder_is_refused(tmp_path, cli):
    (tmp_path / "elsewhere.yaml").write_text("limit: 5\n")
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "sslmon.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    code, out, err = cli("score", str(tmp_path / "ckpts"))
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "ckpts/sslmon.yaml" in line and "outside the folder" in line


def test_fifo_given_as_config_is_refused_without_hanging(tmp_path):
    np.savez(tmp_path / "good.npz", embeddings=np.random.default_rng(0).normal(size=(30, 4)), labels=np.arange(30) % 2)
    os.mkfifo(tmp_path / "c.yaml")  # opening it for reading would wait for a writer forever
    cmd = sslmon_command("score", str(tmp_path / "good.npz"), "--config", str(tmp_path / "c.yaml"))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=child_env())
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "c.yaml" in line and "not a regular file" in line


# --------------------------------------------------------------------------- cache


def test_identical_files_under_two_names_give_two_correct_rows(tmp_path, tiny_data, cache_dir, cli):
    ckpts = tmp_path / "ckpts"
    write_checkpoint(ckpts / "epoch_0005.pt", 5)  # no epoch inside: it comes from the name
    shutil.copy(ckpts / "epoch_0005.pt", ckpts / "last.pt")
    args = ["score", str(ckpts), "--dataset", tiny_data, *FAST, "-f", "json"]
    runs = [cli(*args), cli(*args)]
    for code, out, err in runs:
        assert code == 0, err
        rows = {r["name"]: r for r in json.loads(out)["results"]}
        assert set(rows) == {"epoch_0005.pt", "last.pt"}
        assert rows["epoch_0005.pt"]["epoch"] == 5 and rows["last.pt"]["epoch"] is None
        assert rows["last.pt"]["path"] == str(ckpts / "last.pt")
        assert rows["epoch_0005.pt"]["metrics"] == rows["last.pt"]["metrics"]  # same weights, same numbers
    assert runs[1][2].count("cached:") == 2
    # the same file in another folder: served from the cache, reported under its own path
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(ckpts / "epoch_0005.pt", other / "epoch_0005.pt")
    code, out, err = cli("score", str(other), "--dataset", tiny_data, *FAST, "-f", "json")
    assert "cached: epoch_0005.pt" in err
    assert json.loads(out)["results"][0]["path"] == str(other / "epoch_0005.pt")


def test_a_result_scored_with_trust_is_not_served_without_it(tmp_path, tiny_data, cache_dir, cli):
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    args = ["score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *FAST, "-f", "json"]
    assert "cached:" not in cli(*args, "--trust-checkpoints")[2]
    assert "cached:" not in cli(*args)[2]
    assert "cached:" in cli(*args, "--trust-checkpoints")[2]
    assert "cached:" in cli(*args)[2]


def test_wrong_schema_entry_in_a_real_run_is_recomputed(tmp_path, tiny_data, cache_dir, cli):
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    args = ["score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *FAST, "-f", "json"]
    first = json.loads(cli(*args)[1])["results"][0]["metrics"]
    (entry,) = cache_dir.glob("*.json")
    doc = json.loads(entry.read_text())
    doc["result"]["metrics"] = {"rankme": "high"}
    entry.write_text(json.dumps(doc))
    code, out, err = cli(*args)
    assert code == 0 and "cached:" not in err and "Traceback" not in err
    assert json.loads(out)["results"][0]["metrics"] == first
    assert "cached:" in cli(*args)[2]  # rewritten


def test_unwritable_cache_folder_warns_once_and_scores_everything(tmp_path, tiny_data, monkeypatch, cli):
    (tmp_path / "plain-file").write_text("")
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(tmp_path / "plain-file" / "cache"))  # cannot be created, even by root
    for e in (1, 2, 3):
        write_checkpoint(tmp_path / "ckpts" / f"epoch_{e:04d}.pt", e)
    code, out, err = cli("score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *FAST, "-f", "json", "-q")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cache" in warnings[0] and not [line for line in err.splitlines() if "error" in line]
    assert [r["epoch"] for r in json.loads(out)["results"]] != [] and len(json.loads(out)["results"]) == 3


# --------------------------------------------------------------------------- --save-z3


def test_save_z3_names_that_would_collide_are_refused_before_scoring(tmp_path, tiny_data, cache_dir, cli):
    for run in ("run1", "run2"):
        write_checkpoint(tmp_path / run / "epoch_0001.pt", 1)
    before = snapshot(tmp_path)
    code, out, err = cli("score", str(tmp_path / "run1"), str(tmp_path / "run2"), "--dataset", tiny_data, *FAST,
                         "--save-z3", str(tmp_path / "z3"), "-q")
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "run1/epoch_0001.pt" in line and "run2/epoch_0001.pt" in line and "--save-z3" in line
    assert snapshot(tmp_path) == before  # nothing scored, nothing written (the cache included)


def test_output_naming_a_checkpoint_in_an_input_folder_is_refused(tmp_path, tiny_data, cache_dir, cli):
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    before = snapshot(tmp_path)
    code, out, err = cli("score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *FAST,
                         "-o", str(tmp_path / "ckpts" / "epoch_0001.pt"))
    assert code == 2 and "is one of the inputs" in err
    assert snapshot(tmp_path) == before
    # a results file inside the folder is fine
    code, out, err = cli("score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *FAST, "-o", str(tmp_path / "ckpts" / "r.csv"))
    assert code == 0, err
    (row,) = csv.DictReader(io.StringIO((tmp_path / "ckpts" / "r.csv").read_text()))
    assert row["name"] == "epoch_0001.pt"


def test_correlate_output_files_are_written_whole(tmp_path, cli):
    from scipy.stats import pearsonr

    from sslmon.io.runfile import to_json
    from sslmon.results import Result, Run

    values, acc = [1.0, 3.0, 2.0, 5.0], [0.1, 0.4, 0.2, 0.6]
    run = Run({}, [Result(f"e{e}", None, {"rankme": v, "lp_acc": a}, epoch=e + 1) for e, (v, a) in enumerate(zip(values, acc))])
    (tmp_path / "r.json").write_text(to_json(run, "lp_acc"))
    records = json.loads((tmp_path / "r.json").read_text())["results"]
    code, stdout, err = cli("correlate", str(tmp_path / "r.json"), "-f", "json")
    assert code == 0, err
    code, also, err = cli("correlate", str(tmp_path / "r.json"), "-f", "json", "-o", str(tmp_path / "out" / "c.json"))
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "c.json").read_text())
    assert doc == json.loads(stdout) == json.loads(also)  # -o writes "also": stdout still gets the JSON
    r = doc["runs"][0]["correlations"]["rankme"]["with_init"]["pearson_r"]
    assert r == pytest.approx(pearsonr(values, acc).statistic)
    code, _, err = cli("correlate", str(tmp_path / "r.json"), "-o", str(tmp_path / "out" / "c.txt"))
    assert code == 0 and "Pearson correlation with lp_acc" in (tmp_path / "out" / "c.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.json", "c.txt"]  # no temporary file left
    code, _, err = cli("correlate", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.json"))
    assert code == 2 and "is one of the inputs" in err and json.loads((tmp_path / "r.json").read_text())["results"] == records


# --------------------------------------------------------------------------- issue 21: hangs, stdout, long names

CHEAP = ["--metrics", "rankme,l2_std", "--rank-by", "l2_std", "--arch", "convnet-small"]  # no UMAP


def _child(args: list[str], tmp_path, **kwargs) -> subprocess.CompletedProcess:
    """``sslmon ARGS`` in a child process with this test's own cache (on: the default), killed after 120 s so that a
    hang fails the test instead of stalling it."""
    env = child_env(SSLMON_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run(sslmon_command(*args), env=env, timeout=120, **{"capture_output": True, "text": True, **kwargs})


def test_fifo_dev_zero_and_an_unreadable_file_among_checkpoints_never_hang_the_cached_score(tmp_path, tiny_data):
    ckpts = tmp_path / "ckpts"
    write_checkpoint(ckpts / "epoch_0001.pt", 1)
    os.mkfifo(ckpts / "epoch_0002.pt")  # hashing it for the cache key waited for a writer forever
    (ckpts / "epoch_0003.pt").symlink_to("/dev/zero")  # hashing it never ended
    (ckpts / "epoch_0004.pt").symlink_to("/proc/self/mem")  # a regular file that even root cannot read (EIO)
    run = _child(["score", str(ckpts), "--dataset", tiny_data, *CHEAP, "-q", "-f", "json"], tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, run.stderr
    for name, problem in (("epoch_0002.pt", "not a regular file"), ("epoch_0003.pt", "not a regular file"),
                          ("epoch_0004.pt", "input/output error")):
        (line,) = [line for line in errors if str(ckpts / name) in line]
        assert problem in line
    doc = json.loads(run.stdout)
    assert [r["name"] for r in doc["results"]] == ["epoch_0001.pt"]
    assert sorted(f["path"] for f in doc["failures"]) == [str(ckpts / f"epoch_000{e}.pt") for e in (2, 3, 4)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; the /proc/self/mem case above covers an "
                                              "unreadable checkpoint for root")
def test_an_unreadable_checkpoint_is_a_failed_input_not_a_usage_error(tmp_path, tiny_data, cache_dir, cli):
    write_checkpoint(tmp_path / "epoch_0001.pt", 1)
    locked = write_checkpoint(tmp_path / "epoch_0002.pt", 2)
    locked.chmod(0)
    code, out, err = cli("score", str(tmp_path / "epoch_0001.pt"), str(locked), "--dataset", tiny_data, *CHEAP, "-q",
                         "-f", "json")
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(locked) in line and "Invalid value" not in line
    assert [r["name"] for r in json.loads(out)["results"]] == ["epoch_0001.pt"]


def test_stdout_on_a_full_disk_is_one_line_and_a_closed_pipe_is_not_exit_1(tmp_path):
    np.savez(tmp_path / "good.npz", embeddings=np.random.default_rng(0).normal(size=(30, 4)), labels=np.arange(30) % 3)
    base = ["score", str(tmp_path / "good.npz"), "--metrics", "rankme", "-q"]
    for fmt in ("table", "json"):
        with open("/dev/full", "w") as full:
            run = _child([*base, "-f", fmt, "-o", str(tmp_path / f"r-{fmt}.csv")], tmp_path, stdout=full, stderr=subprocess.PIPE,
                         capture_output=False)
        assert run.returncode == 2 and "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
        assert run.stderr.splitlines() == [f"wrote {tmp_path / f'r-{fmt}.csv'} ({'csv' if fmt == 'table' else 'json'})",
                                           "error: stdout: cannot write the results (no space left on device)"]
        assert (tmp_path / f"r-{fmt}.csv").stat().st_size > 0  # the -o file was written before stdout failed
    # a reader that is gone (`sslmon score ... | head -0`): 141 as for SIGPIPE, never 1 (a --fail-if that held)
    proc = subprocess.Popen(sslmon_command(*base, "-f", "json"), env=child_env(SSLMON_CACHE_DIR=str(tmp_path / "cache")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    try:
        stderr = proc.stderr.read()
        assert proc.wait(timeout=120) == 141
    finally:
        proc.kill()
    assert stderr == ""


def test_output_names_up_to_255_bytes_work_and_z3_names_are_shortened(tmp_path, tiny_data, cache_dir, cli):
    np.savez(tmp_path / "good.npz", embeddings=np.random.default_rng(0).normal(size=(30, 4)), labels=np.arange(30) % 3)
    longest = tmp_path / ("r" * 250 + ".json")  # 255 bytes: legal; the temporary file beside it must not be longer
    code, out, err = cli("score", str(tmp_path / "good.npz"), "--metrics", "rankme", "-q", "-f", "json", "-o", str(longest))
    assert code == 0, err
    assert json.loads(longest.read_text())["results"][0]["name"] == "good"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    # a checkpoint whose NAME.z3.npz would be over 255 bytes: the result is kept, the Z3 file saved under a shorter name
    from sslmon.api import z3_name
    from sslmon.io.z3file import read_z3

    ckpt = write_checkpoint(tmp_path / "ckpts" / ("e" * 249 + "_1.pt"), 1)
    code, out, err = cli("score", str(ckpt), "--dataset", tiny_data, "--metrics", "entropy_z3", "--rank-by", "entropy_z3",
                         "--seeds", "1", "--umap-epochs", "10", "--arch", "convnet-small", "-q", "-f", "json",
                         "--save-z3", str(tmp_path / "z3"))
    assert code == 0, err
    (saved,) = (tmp_path / "z3").iterdir()
    assert saved.name == z3_name(ckpt.name) and len(saved.name.encode()) == 255 and saved.name.startswith("e" * 200)
    assert len(read_z3(saved).z3) == 60  # the tiny data set's 60 images
    assert json.loads(out)["results"][0]["metrics"]["entropy_z3"] is not None


def test_save_z3_that_writes_nothing_says_so_and_json_output_also_goes_to_stdout(tmp_path, tiny_data, cache_dir, cli):
    np.savez(tmp_path / "good.npz", embeddings=np.random.default_rng(0).normal(size=(30, 4)), labels=np.arange(30) % 3)
    code, out, err = cli("score", str(tmp_path / "good.npz"), "--metrics", "rankme", "-f", "json", "-o", str(tmp_path / "r.json"),
                         "--save-z3", str(tmp_path / "z3"))
    assert code == 0, err
    assert json.loads(out) == json.loads((tmp_path / "r.json").read_text())  # -o writes the results "also"
    notes = [line for line in err.splitlines() if "--save-z3" in line]
    assert len(notes) == 1 and "no Z3 file for 1 result(s) (good)" in notes[0] and not (tmp_path / "z3").exists()  # as for checkpoints
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    code, out, err = cli("score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *CHEAP, "--save-z3", str(tmp_path / "z3"))
    assert code == 0, err
    (note,) = [line for line in err.splitlines() if "--save-z3" in line]
    assert "no Z3 file for 1 result(s) (epoch_0001.pt)" in note and "save_z3" not in note.replace("--save-z3", "")
    assert not (tmp_path / "z3").exists() or list((tmp_path / "z3").iterdir()) == []


def test_messages_name_the_command_line_flags(tmp_path, tiny_data, cache_dir, cli, torch_home):
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    args = ["score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *CHEAP]
    assert cli(*args)[0] == 0
    code, out, err = cli(*args)
    (line,) = [line for line in err.splitlines() if line.startswith("cached:")]
    assert line == "cached: epoch_0001.pt (same content, images and settings; --no-cache recomputes)"
    code, out, err = cli("compare", "resnet18", "--offline", "--dataset", tiny_data, "--metrics", "rankme", "-q")
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.endswith("or use --weights none") and "[--weights]" not in line


def test_a_folder_option_file_says_what_it_set(tmp_path, tiny_data, cache_dir, cli):
    write_checkpoint(tmp_path / "ckpts" / "epoch_0001.pt", 1)
    (tmp_path / "ckpts" / "sslmon.yaml").write_text("seeds: 2\nlimit: 30\n")
    code, out, err = cli("score", str(tmp_path / "ckpts"), "--dataset", tiny_data, *CHEAP, "--limit", "45", "-q", "-f", "json")
    assert code == 0, err
    assert err.splitlines() == [f"read options from {tmp_path / 'ckpts' / 'sslmon.yaml'}: seeds, limit "
                                "(the command line wins for limit)"]
    config = json.loads(out)["config"]
    assert config["seeds"] == [0, 1] and config["n_samples"] == 45
