"""``sslmon watch DIR``: follow a training run's checkpoint folder and score each checkpoint once it is complete.

Polling only (``os.stat`` every ``poll`` seconds; no filesystem-events dependency), so it behaves the same on
local and network filesystems. A checkpoint is *complete* when its size and mtime (ns) are unchanged between two
polls and it loads. A file that fails to load while it still changes is being written and is waited for; one
that fails and then stays unchanged for ``grace`` seconds is reported once (``error: FILE: ...``) and skipped
until its content changes. Hidden files (``.name.pt``: a writer's temporary file) are ignored.

Resuming: each result written to the JSON Lines output carries ``source.digest``, the SHA-256 of the checkpoint's
bytes (a failure carries ``digest``). A checkpoint whose (digest, file name) the output already holds is not
scored again: the name matters because the epoch may come from it; the digest because a file rewritten under the
same name is a new checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import time
from typing import Callable, Sequence

from sslmon.models.sources import Source
from sslmon.io.output import file_digest
from sslmon.io.inputs import check_regular_file
from sslmon.alarms import FLAG_CODES, NOISE, run_flags
from sslmon.conditions import Gate, judge
from sslmon.models.encoders import CheckpointError
from sslmon.errors import SslmonError
from sslmon.io.output import ResultsFile, read_text
from sslmon.io.runfile import MAX_RESULTS_BYTES, is_header, jsonl_line, parse_record
from sslmon.results import Failure, OnResult, Result, Run

Log = Callable[[str], None]
Score = Callable[[list[Source], OnResult], Run]  # scores sources in order, calling on_result per record
ListSources = Callable[[Path], list[Source]]  # the checkpoints of a folder, in epoch order


class WatchError(SslmonError):
    """The output cannot be resumed from, or the folder cannot be listed; the message names the file, one line."""


@dataclass(frozen=True)
class Stamp:
    """What tells that a file changed between two polls: size (bytes), modification and status-change time (ns; the
    latter changes with the permissions too, so a file made readable is looked at again)."""

    size: int
    mtime_ns: int
    ctime_ns: int = 0


def stamp(path: str | Path) -> Stamp | None:
    """The file's :class:`Stamp` (a broken or looping link's own, so that it is reported), or None when it is gone."""
    for look in (os.stat, os.lstat):
        try:
            st = look(path)
        except OSError:
            continue
        return Stamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return None


@dataclass
class Held:
    """What a JSON Lines output already holds: its records and their (digest, file name) keys."""

    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)


def read_held(path: Path, log: Log) -> Held:
    """The records of an existing JSON Lines output (none when it does not exist).

    A last line without its newline (a writer killed mid-line) is cut off the file, with a warning, so that its
    checkpoint is scored again; any other line that is not an sslmon record is a WatchError (the file is not
    appended to)."""
    held = Held()
    if not os.path.lexists(path):
        return held
    text = read_text(path, MAX_RESULTS_BYTES, WatchError, "the JSON Lines of an earlier watch (name a new output file)")
    complete, _, partial = text.rpartition("\n")
    if partial:
        log(f"warning: {path}: cutting off an unfinished last line (a killed writer); its checkpoint is scored again")
        try:
            with open(path, "r+b") as f:
                f.truncate(len((complete + "\n").encode("utf-8")) if complete else 0)
        except OSError as exc:
            raise WatchError(f"{path}: cannot cut off the unfinished last line ({(exc.strerror or '').lower()})") from None
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if is_header(record):
                continue
            item = parse_record(record)
        except (ValueError, RecursionError) as exc:
            raise WatchError(f"{path}: line {number} is not an sslmon record ({exc}); name a new output file") from None
        if isinstance(item, Failure):
            held.failures.append(item)
            held.keys.add((str(record.get("digest")), Path(item.path).name))
        else:
            held.results.append(item)
            held.keys.add((str(item.source.get("digest")), item.name))
    return held


@dataclass
class Outcome:
    """How a watch ended: the run (held and new records), the --fail-if messages that stopped it, the alarm lines
    of an --exit-on flag that stopped it, Ctrl-C."""

    run: Run
    tripped: list[str] = field(default_factory=list)
    interrupted: bool = False
    alarmed: list[str] = field(default_factory=list)


class _Stop(Exception):
    """A --fail-if condition held: leave the scoring loop."""


class _Alarm(Exception):
    """A flag named by --exit-on appeared: leave the scoring loop."""


@dataclass
class _Broken:
    """A complete-looking file that failed: reported once it stayed unchanged ``grace`` seconds."""

    stamp: Stamp
    since: float
    failure: Failure
    digest: str


def watch(
    folder: Path,
    score: Score,
    list_sources: ListSources,
    held: Held,
    out: ResultsFile | None = None,
    log: Log = lambda msg: None,
    poll: float = 5.0,
    until_idle: float | None = None,
    conditions: Sequence[Gate] = (),
    rank_by: str = "epoch",
    exclude_init: bool = True,
    grace: float | None = None,
    on_change: Callable[[Run], None] | None = None,
    exit_on: Sequence[str] = (),
) -> Outcome:
    """Score the checkpoints in ``folder`` and each new one as it appears, until idle, a condition, or Ctrl-C.

    Each poll lists the folder; the complete checkpoints not yet handled are scored together in epoch order.
    Each result is appended to ``out`` (fsync) and logged as one line; a condition in ``conditions`` that holds
    for the newest checkpoint (highest epoch; the init milestone not when ``exclude_init``) stops the watch.
    ``until_idle``: seconds with no new or changed checkpoint after which it returns. ``grace``: seconds a file
    that fails must stay unchanged before it is reported (default ``max(3 * poll, 2)``). ``on_change(run)`` is called
    after each new result or reported failure (the live table). Each ``collapse`` or ``plateau`` flag of a new
    result (:mod:`sslmon.alarms`) is logged as ``alarm: NAME: CODE: MESSAGE``; a flag whose code is in ``exit_on``
    ends the watch (``Outcome.alarmed``).
    """
    unknown = [code for code in exit_on if code not in FLAG_CODES]
    if unknown:
        raise ValueError(f"exit_on: unknown flag(s) {', '.join(unknown)}; valid: {', '.join(FLAG_CODES)}")
    grace = max(3 * poll, 2.0) if grace is None else grace
    run = Run(config={}, failures=list(held.failures), exclude_init=exclude_init)
    for result in held.results:  # in file order: a checkpoint rewritten under its name shows its newest result
        _replace(run, result)
    keys = set(held.keys)
    seen: dict[str, Stamp] = {}  # path -> stamp at the last poll
    done: dict[str, Stamp] = {}  # path -> stamp when it was scored, skipped as held, or reported broken
    broken: dict[str, _Broken] = {}
    last_change = time.monotonic()
    if on_change and run.results:
        on_change(run)
    try:
        while True:
            ready: list[tuple[Source, Stamp]] = []
            listing = _listing(folder, list_sources)
            present = {str(source.path) for source in listing}
            for gone in [path for path in broken if path not in present]:  # deleted before it was reported
                del broken[gone]
            for source in listing:
                path = str(source.path)
                current = stamp(path)
                previous, seen[path] = seen.get(path), current
                if current is None or done.get(path) == current:
                    continue
                if previous != current:  # new or still changing: wait for the next poll
                    last_change = time.monotonic()
                    broken.pop(path, None)
                    continue
                if path in broken:
                    if time.monotonic() - broken[path].since >= grace:
                        _report(run, broken.pop(path), out, log)
                        if on_change:
                            on_change(run)
                        done[path] = current
                    continue
                ready.append((source, current))
            if ready:
                _score_ready(ready, score, run, keys, done, broken, out, log, conditions, rank_by, on_change, exit_on)
                last_change = time.monotonic()
            if until_idle is not None and time.monotonic() - last_change >= until_idle and not broken:
                return Outcome(run)
            time.sleep(poll)
    except _Stop as stop:
        return Outcome(run, tripped=list(stop.args))
    except _Alarm as alarm:
        return Outcome(run, alarmed=list(alarm.args))
    except KeyboardInterrupt:
        return Outcome(run, interrupted=True)


def _listing(folder: Path, list_sources: ListSources) -> list[Source]:
    """The folder's checkpoints in epoch order, without hidden (temporary) files; WatchError when unlistable."""
    try:
        sources = list_sources(folder)
    except CheckpointError as exc:  # a folder that vanished or cannot be listed
        raise WatchError(str(exc)) from None
    return [s for s in sources if not s.name.startswith(".")]


def _score_ready(
    ready: list[tuple[Source, Stamp]], score: Score, run: Run, keys: set[tuple[str, str]], done: dict[str, Stamp],
    broken: dict[str, _Broken], out: ResultsFile | None, log: Log, conditions: Sequence[Gate], rank_by: str,
    on_change: Callable[[Run], None] | None, exit_on: Sequence[str] = (),
) -> None:
    """Score the complete checkpoints that the output does not hold yet; a failure to load waits in ``broken``; a
    file that is not a regular file (FIFO, device, broken link) or cannot be read is reported at once, never opened
    for reading or hashed (that could hang or never end)."""
    todo: list[Source] = []
    digests: dict[str, tuple[str, Stamp]] = {}
    for source, current in ready:
        problem = _unreadable(Path(source.path or source.name))
        digest = None
        if problem is None:
            try:
                digest = file_digest(source.path)
            except OSError as exc:
                problem = f"{source.path}: cannot read ({(exc.strerror or type(exc).__name__).lower()})"
        if problem is not None:
            if (str(None), source.name) in keys:
                log(f"already in the output: {source.name}")
            elif stamp(source.path) is not None:  # not deleted since the poll
                keys.add((str(None), source.name))
                _report(run, _Broken(current, time.monotonic(), Failure(str(source.path), problem), ""), out, log)
                if on_change:
                    on_change(run)
            done[str(source.path)] = current
            continue
        if (digest, source.name) in keys:
            log(f"already in the output: {source.name}")
            done[str(source.path)] = current
            continue
        todo.append(source)
        digests[str(source.path)] = (digest, current)
    if not todo:
        return

    def on_result(batch: Run, item: Result | Failure) -> None:
        path = str(item.path)
        digest, before = digests[path]
        if stamp(path) != before:  # rewritten while it was scored: score the new content later
            return
        if not run.config:
            run.config = dict(batch.config)
        if isinstance(item, Failure):
            broken[path] = _Broken(before, time.monotonic(), item, digest)
            return
        item.source["digest"] = digest
        _replace(run, item)
        keys.add((digest, item.name))
        done[path] = before
        if out is not None:
            out.stream(jsonl_line(item))
        log(summary(item))
        alarms = [f for f in run_flags(run.results)[-1] if f["code"] != NOISE]
        for flag in alarms:
            log(f"alarm: {item.name}: {flag['code']}: {flag['message']}")
        if on_change:
            on_change(run)
        stop = [f"alarm: {item.name}: {f['code']}: {f['message']}" for f in alarms if f["code"] in exit_on]
        if stop:
            raise _Alarm(*stop)
        tripped = judge(run.gated(), conditions, "latest", rank_by) if conditions else []
        if tripped:
            raise _Stop(*tripped)

    score(todo, on_result)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a checkpoint without opening it (broken link, FIFO, device, folder), else None."""
    try:
        check_regular_file(path, "checkpoint")
    except SslmonError as exc:
        return str(exc)
    return None


def _replace(run: Run, item: Result) -> None:
    """Add ``item`` to the run in place of an earlier result or failure of the same file (a checkpoint rewritten
    under its name: the live and final tables show the new content only)."""
    run.results = [r for r in run.results if r.path != item.path] + [item]
    run.failures = [f for f in run.failures if f.path != item.path]


def _report(run: Run, entry: _Broken, out: ResultsFile | None, log: Log) -> None:
    """Report a file that stayed broken: one ``error:`` line, one JSON line, one failure in the run."""
    run.failures = [f for f in run.failures if f.path != entry.failure.path] + [entry.failure]
    if out is not None:
        out.stream(jsonl_line(entry.failure, digest=entry.digest or None))
    log(f"error: {entry.failure.error}")


def summary(result: Result) -> str:
    """One plain line per scored checkpoint: ``NAME (epoch E): metric=value ...`` (4 significant digits)."""
    epoch = "" if result.epoch is None else f" (epoch {result.epoch})"
    values = " ".join(f"{m}={v:.4g}" for m, v in result.metrics.items() if v is not None)
    return f"scored {result.name}{epoch}: {values}"

