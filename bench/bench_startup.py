"""Start-up of the commands that only print: wall time, peak memory and heavy imports of a whole new process.

Runs ``sslmon --help``, ``sslmon --version`` and ``sslmon metrics`` (as ``python -c "from sslmon.cli import
main; main()" ARGS``) ``--runs`` times each, in turn, from this checkout and, with ``--vs DIR``, from another
checkout (e.g. the previous release) for a ratio; prints the median wall seconds, CPU seconds (user + system: less
moved by a busy machine than the wall time), the median peak memory
(max RSS, from the kernel's accounting of each finished child) and which heavy libraries the command imported.

Usage: python bench/bench_startup.py [--runs 7] [--vs /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["--version"], ["metrics"])
HEAVY = ("torch", "torchvision", "sklearn", "umap", "numba", "scipy", "pynndescent", "PIL")
MAIN = "from sslmon.cli import main; main()"
PROBE = ("import sys\nfrom sslmon.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
         f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def one_run(root: Path, args: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak memory in MB) of one new process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *args], env=env_for(root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = 0  # reaped above
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def heavy_imports(root: Path, args: list[str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env_for(root), capture_output=True, text=True)
    line = [x for x in out.stderr.splitlines() if x.startswith("HEAVY")]
    return (line[-1].split(" ", 1)[1] if line and " " in line[-1] else "") or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--vs", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    roots = [("this checkout", ROOT)] + ([(f"--vs {args.vs}", args.vs)] if args.vs else [])
    print(f"## bench_startup: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, {args.runs} runs each, "
          f"load average (1 min) {os.getloadavg()[0]:.2f}\n")
    print("| command | checkout | median wall s | median CPU s | median peak MB | heavy imports |")
    print("|---|---|---|---|---|---|")
    for command in COMMANDS:
        for _ in roots:  # warm-up: the file cache
            one_run(roots[0][1], command)
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in roots}
        for _ in range(args.runs):
            for name, root in roots:  # in turn, so that a drift of the machine's speed hits both alike
                runs[name].append(one_run(root, command))
        for name, root in roots:
            walls, cpus, peaks = zip(*runs[name])
            print(f"| sslmon {' '.join(command)} | {name} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} | "
                  f"{statistics.median(peaks):.0f} | {heavy_imports(root, command)} |")
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
