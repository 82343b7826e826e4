"""Wall time of scoring the six sample checkpoints with the local executor and with ``--executor ray``, in one run.

Each executor runs in a new process (as ``sslmon score`` would), with the same settings (``--limit``, default seeds,
no results cache) and the same warm numba kernel cache: a warm-up process scores one checkpoint first with
``SSLMON_CACHE_DIR`` set to a folder of this bench, and both measured processes (and the Ray workers, which inherit
the driver's environment) use that folder. In the Ray process the local Ray instance is started first and timed on
its own (``ray.init`` with every CPU of the machine, as ``--executor ray`` does); the Ray wall time is then the
scoring alone, worker start-up (importing torch and sslmon in each worker) included.

Printed: the load average before and after; the threads a Ray worker has after scoring (Ray sets
``OMP_NUM_THREADS`` to the task's CPUs, which torch and OpenBLAS follow; the executor sets ``NUMBA_NUM_THREADS`` to
the same, else numba's OpenMP layer would give the OpenMP pool torch shares every core); wall seconds and the ratio
ray/local; the per-checkpoint ``timings`` of the result JSON (mean over the checkpoints, seconds; stages under
0.05 s summed as ``other``) for each executor; and whether the two JSON documents are identical apart from
``timings`` and ``config.executor``.

Usage: python bench/bench_executors.py [--limit 2000] [--cpus-per-task 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_checkpoints"


# --------------------------------------------------------------------------- one executor, in a new process


def thread_counts(item: object = None, shared: object = None) -> dict[str, object]:
    """The thread settings of the process this runs in (a Ray task: the worker's); an executor's ``fn``."""
    import numba
    import torch
    from threadpoolctl import threadpool_info

    import sslmon.api  # noqa: F401  (what the scoring task imports: its thread pools)

    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch": torch.get_num_threads(),
            "numba": numba.get_num_threads(), "SSLMON_CACHE_DIR": os.environ.get("SSLMON_CACHE_DIR"),
            "pools": sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})}


def worker(executor: str, paths: list[str], limit: int, cpus_per_task: float, out: Path) -> None:
    """Score ``paths`` with ``executor``; write the run's JSON and the wall times (s) to ``out``."""
    t0 = time.perf_counter()
    from sslmon.api import Options, score
    from sslmon.report import to_json

    t_import = time.perf_counter() - t0
    times = {"import": t_import}
    threads = None
    if executor == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)  # as RayExecutor does
        times["ray_start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = score(paths, options=Options(limit=limit, cache=False, executor=executor, cpus_per_task=cpus_per_task))
    times["score"] = time.perf_counter() - t0
    if executor == "ray":
        from sslmon.executors import make_executor

        with make_executor("ray", cpus_per_task=cpus_per_task) as executor:  # joins this instance, as the scoring did
            [(_, threads)] = executor.run(thread_counts, [None], None)  # on a worker the scoring used: Ray reuses them
        t0 = time.perf_counter()
        ray.shutdown()
        times["ray_stop"] = time.perf_counter() - t0
    else:
        threads = thread_counts()
    out.write_text(json.dumps({"times": times, "threads": threads, "doc": json.loads(to_json(run, run.config["rank_by"]))}))


def spawn(executor: str, paths: list[Path], limit: int, cpus_per_task: float, env: dict[str, str], tmp: Path) -> dict:
    """Run :func:`worker` in a new process; its output, with the process's wall time as ``times.process``."""
    out = tmp / f"{executor}.json"
    cmd = [sys.executable, __file__, "--worker", executor, "--limit", str(limit), "--cpus-per-task", str(cpus_per_task),
           "--out", str(out), *map(str, paths)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    result = json.loads(out.read_text())
    result["times"]["process"] = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------- report


def comparable(doc: dict) -> dict:
    """The document without what legitimately differs between executors: timings and config.executor."""
    doc = json.loads(json.dumps(doc))
    doc["config"].pop("executor")
    for record in doc["results"]:
        record.pop("timings")
    return doc


def mean_timings(doc: dict) -> dict[str, float]:
    """Mean over the results of each ``timings`` key (s)."""
    keys = list(dict.fromkeys(k for r in doc["results"] for k in r["timings"]))
    return {k: sum(r["timings"].get(k, 0.0) for r in doc["results"]) / len(doc["results"]) for k in keys}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=2000, help="evaluation images (and as many train images)")
    ap.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs each Ray task reserves")
    ap.add_argument("--worker", choices=("local", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.paths, args.limit, args.cpus_per_task, args.out)
        return

    paths = sorted(SAMPLES.glob("epoch_*.pt"))
    print(f"{len(paths)} sample checkpoints, --limit {args.limit} (+{args.limit} train images), default seeds, no results "
          f"cache; {os.cpu_count()} CPUs, Ray: num_cpus={os.cpu_count()}, --cpus-per-task {args.cpus_per_task:g} "
          f"(so {int(os.cpu_count() // args.cpus_per_task)} tasks at a time)")
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="sslmon-bench-executors-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "SSLMON_CACHE_DIR": str(tmp / "cache")}
        t0 = time.perf_counter()
        spawn("local", paths[:1], 300, args.cpus_per_task, env, tmp)  # compiles umap-learn's kernels into the cache
        print(f"warm-up (numba kernels compiled into {env['SSLMON_CACHE_DIR']}): {time.perf_counter() - t0:.1f} s")
        local = spawn("local", paths, args.limit, args.cpus_per_task, env, tmp)
        ray = spawn("ray", paths, args.limit, args.cpus_per_task, env, tmp)
    print(f"load average after: {load_average()}")

    print(f"\nthreads, local process: {local['threads']}")
    print(f"threads, Ray worker:    {ray['threads']}")
    lt, rt = local["times"], ray["times"]
    print("\n| executor | scoring 6 checkpoints | Ray start | Ray shutdown | whole process | ray/local (scoring) |")
    print("|---|---|---|---|---|---|")
    print(f"| local | {lt['score']:.1f} s | | | {lt['process']:.1f} s | |")
    print(f"| ray | {rt['score']:.1f} s | {rt['ray_start']:.1f} s | {rt['ray_stop']:.1f} s | {rt['process']:.1f} s | "
          f"{rt['score'] / lt['score']:.2f} |")
    print(f"ray/local, whole process (Ray start-up included): {rt['process'] / lt['process']:.2f}")

    lm, rm = mean_timings(local["doc"]), mean_timings(ray["doc"])
    shown = [k for k in lm if max(lm[k], rm.get(k, 0.0)) >= 0.05]
    print("\nper-checkpoint timings from the JSON (mean over the checkpoints, s):")
    print("| executor | " + " | ".join(shown) + " | other | sum |")
    print("|---|" + "---|" * (len(shown) + 2))
    for name, m in (("local", lm), ("ray", rm)):
        other = sum(v for k, v in m.items() if k not in shown)
        print(f"| {name} | " + " | ".join(f"{m.get(k, 0.0):.2f}" for k in shown) + f" | {other:.2f} | {sum(m.values()):.2f} |")

    same = comparable(local["doc"]) == comparable(ray["doc"])
    print(f"\nJSON identical apart from timings and config.executor: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
