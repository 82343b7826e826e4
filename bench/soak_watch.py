"""Soak test of ``sslmon watch`` (issue 21): a writer fills a folder with good, slow (partly written), truncated,
replaced, unreadable and special files while the watcher is killed (SIGKILL) and restarted at random; at the end a
last watcher runs with ``--until-idle``. Then the JSON Lines output must hold each (name, digest) exactly once, every
good checkpoint in the folder must be there, and no watcher may hang.

    python bench/soak_watch.py --duration 1800            # the long run (30 min); prints the figures as JSON
    python bench/soak_watch.py --duration 45 --seed 1     # the short one (tests/test_cli_watch.py, marked slow)

Figures: ``written`` good checkpoints (name, content) the writer left in the folder, ``versions`` every good
(name, digest) it wrote (a version replaced before the watcher saw it complete need not be scored), ``bad`` files
that must fail (truncated, FIFO, link to /dev/zero, broken link, /proc/self/mem), ``scored`` result lines,
``failed`` failure lines, ``duplicated`` lines whose (name, digest) an earlier line holds, ``lost`` good checkpoints
in the folder without a result line, ``bad_unreported`` bad files without a failure line, ``kills``, ``starts``,
``hung`` watchers that did not end in time (a killed one, or the last one after ``--until-idle``), ``crashed``
watchers that exited by themselves before they were killed, ``last_exit`` the last watcher's exit code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "sample_checkpoints").glob("epoch_*.pt"))
WATCH = ["--dataset", "default", "--limit", "200", "--metrics", "rankme,l2_std", "--rank-by", "l2_std", "--poll", "0.2", "-q"]
LAST_WATCH_LIMIT = 600.0  # seconds the last watcher may take to score what is left and go idle


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Writer:
    """Writes checkpoints into ``folder`` at random until ``stop`` is set; records what must end up in the output."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.folder, self.rng = folder, rng
        self.count = 0
        self.good: dict[str, str] = {}  # name -> digest of the good content it holds now
        self.versions: set[tuple[str, str]] = set()  # every good (name, digest) written
        self.bad: set[str] = set()  # names that must be reported as failed
        self.stop = threading.Event()

    def _name(self) -> str:
        self.count += 1
        return f"epoch_{self.count:04d}.pt"

    def _good(self, name: str, content: bytes) -> None:
        self.good[name] = hashlib.sha256(content).hexdigest()
        self.versions.add((name, self.good[name]))
        self.bad.discard(name)

    def step(self) -> None:
        """One random action (weights: mostly good checkpoints)."""
        action = self.rng.choices(["atomic", "slow", "truncated", "replaced", "special", "unreadable"], [5, 2, 1, 2, 1, 1])[0]
        content = self.rng.choice(SAMPLES).read_bytes()
        if action == "replaced" and self.good:  # new weights saved atomically under a name already scored (or not)
            name = self.rng.choice(sorted(self.good))
            while hashlib.sha256(content).hexdigest() == self.good[name]:
                content = self.rng.choice(SAMPLES).read_bytes()
            action = "atomic"
        else:
            name = self._name()
        path = self.folder / name
        if action == "atomic":  # torch.save to a hidden file, then rename: complete at once
            tmp = self.folder / f".{name}.tmp"
            tmp.write_bytes(content)
            os.replace(tmp, path)
            self._good(name, content)
        elif action == "slow":  # written in 5 pieces over about a second, in place
            with open(path, "wb") as f:
                for i in range(5):
                    f.write(content[i * len(content) // 5:(i + 1) * len(content) // 5])
                    f.flush()
                    if self.stop.wait(0.2):
                        break
            if path.stat().st_size == len(content):
                self._good(name, content)
            else:  # stopped half-way: stays cut
                self.bad.add(name)
        elif action == "truncated":  # a writer that died: stays cut
            path.write_bytes(content[: self.rng.randrange(1, len(content) // 2)])
            self.bad.add(name)
        elif action == "special":
            kind = self.rng.choice(["fifo", "zero", "broken"])
            if kind == "fifo":
                os.mkfifo(path)
            else:
                path.symlink_to("/dev/zero" if kind == "zero" else self.folder / "nowhere.bin")
            self.bad.add(name)
        else:  # unreadable: chmod 000 (root reads it anyway: then it is good) or a file nobody can read
            if os.geteuid() == 0:
                path.symlink_to("/proc/self/mem")  # regular, but reading it fails (EIO) even for root
                self.bad.add(name)
            else:
                path.write_bytes(content)
                path.chmod(0)
                self.bad.add(name)

    def run(self, pause: float) -> None:
        while not self.stop.is_set():
            self.step()
            self.stop.wait(self.rng.uniform(0, pause))


def _start(folder: Path, out: Path, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-c", "from sslmon.cli import main; main()", "watch", str(folder), *WATCH, "-o", str(out), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("a"), start_new_session=True)


def _records(out: Path) -> list[dict]:
    """The finished result and failure lines of ``out`` (header lines, one per watcher start, left out)."""
    from sslmon.io.runfile import is_header

    text = out.read_text() if out.exists() else ""
    records = [json.loads(line) for line in text.splitlines()[: text.count("\n")] if line.strip()]
    return [r for r in records if not is_header(r)]


def soak(duration: float, seed: int = 0, work: Path | None = None, pause: float = 1.5, kill_every: tuple[float, float] = (3, 20),
         log=print) -> dict[str, int | float]:
    """Run the soak for ``duration`` seconds of writing (then one last watcher); the figures (see module docstring)."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="soak-")) if work is None else work
    folder, out, errlog = work / "run", work / "out.jsonl", work / "watch.log"
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SSLMON_CACHE_DIR": os.environ.get("SSLMON_CACHE_DIR", str(work / "cache"))}
    writer = Writer(folder, rng)
    thread = threading.Thread(target=writer.run, args=(pause,), daemon=True)
    figures = {"kills": 0, "starts": 0, "hung": 0, "crashed": 0}
    t0 = time.monotonic()
    thread.start()
    try:
        while time.monotonic() - t0 < duration:
            proc = _start(folder, out, env, errlog)
            figures["starts"] += 1
            time.sleep(min(rng.uniform(*kill_every), max(0.0, duration - (time.monotonic() - t0))))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                figures["kills"] += 1
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                figures["hung"] += 1
            if proc.returncode not in (-signal.SIGKILL, None):
                figures["crashed"] += 1
                log(f"watcher exited by itself with {proc.returncode}; see {errlog}")
    finally:
        writer.stop.set()
        thread.join()
    last = _start(folder, out, env, errlog, "--until-idle", "5")
    figures["starts"] += 1
    try:
        last.wait(timeout=LAST_WATCH_LIMIT)
    except subprocess.TimeoutExpired:
        figures["hung"] += 1
        os.kill(last.pid, signal.SIGKILL)
        last.wait()
    records = _records(out)
    keys = [(r["name"], r["source"]["digest"]) if not r.get("failed") else (Path(r["path"]).name, str(r.get("digest")))
            for r in records]
    results = {k for k, r in zip(keys, records) if not r.get("failed")}
    failed_names = {k[0] for k, r in zip(keys, records) if r.get("failed")}
    figures.update(
        seconds=round(time.monotonic() - t0, 1), written=len(writer.good), versions=len(writer.versions), bad=len(writer.bad),
        scored=sum(not r.get("failed") for r in records), failed=sum(bool(r.get("failed")) for r in records),
        duplicated=len(keys) - len(set(keys)),
        lost=sum((name, digest) not in results for name, digest in writer.good.items()),
        bad_unreported=len(writer.bad - failed_names), last_exit=last.returncode,
    )
    if failed(figures):
        log(f"kept for a look: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def failed(figures: dict[str, int | float]) -> bool:
    """True when the soak found a defect: a line doubled, a good checkpoint lost, a bad file unreported, a watcher
    hung or crashed, or the last watcher not ending with exit 0."""
    return bool(figures["lost"] or figures["duplicated"] or figures["bad_unreported"] or figures["hung"] or figures["crashed"]
                or figures["last_exit"] != 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of writing and killing (default 1800)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="empty folder to work in (default: a new temporary one)")
    args = parser.parse_args()
    figures = soak(args.duration, args.seed, args.work, log=lambda msg: print(msg, file=sys.stderr))
    print(json.dumps(figures))
    sys.exit(1 if failed(figures) else 0)


if __name__ == "__main__":
    main()
