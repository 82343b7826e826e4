"""Results files, written and read here: the JSON document of ``sslmon score -f json`` and the JSON Lines of
``score -f jsonl``, ``sslmon watch -o x.jsonl`` and the Lightning callback.

- JSON document: :meth:`~sslmon.results.Run.to_dict` (``sslmon_version``, ``schema_version``, ``config``,
  ``results`` in rank order, each with its ``rank``, ``failures``), indented.
- JSON Lines: a header first (``"header": true``, ``sslmon_version``, ``schema_version``, ``config``, ``started``),
  then one object per line, a result (:meth:`~sslmon.results.Result.to_dict` plus ``rank``, null while unranked) or
  a failure (``"failed": true``, ``path``, ``error``, and with ``sslmon watch`` the ``digest`` of the failed file),
  each with the ``time`` it was written. Files without a header (sslmon < 0.5) are read too, without config.

The contract (every field, its type, the schema version) is ``sslmon/schema/results.schema.json`` and
docs/results-format.md.

Files are untrusted: at most :data:`MAX_RESULTS_BYTES` are read, from a regular file only (a FIFO never hangs the
reader), and every record is checked field by field (:meth:`Run.from_dict`); any problem is a
:class:`ResultsFileError` of one line naming the file.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
import json
import sys
from pathlib import Path
from typing import Any, Callable

from sslmon.errors import SslmonError
from sslmon.io.output import read_text
from sslmon.recommend import document
from sslmon.results import SCHEMA_VERSION, Failure, Result, Run, check_schema_version, without_rank
from sslmon import __version__

MAX_RESULTS_BYTES = 256 * 2**20  # largest results file read (256 MiB: some 100,000 records with per-seed values)
TOO_MANY_DIGITS = f"holds an integer of more than {sys.get_int_max_str_digits()} digits (Python's limit for reading one)"
FAILURE_EXTRAS = ("failed", "digest")  # keys a JSON Lines failure carries beside the Failure's own
HEADER_FIELDS = ("header", "sslmon_version", "schema_version", "config", "started")  # the JSON Lines header's keys


class ResultsFileError(SslmonError, ValueError):
    """A results file cannot be read or is not an sslmon results document; the message names it."""


def now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-12-06T21:30:05+00:00``): ``time`` and ``started``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def jsonl_header(config: dict[str, Any], started: str | None = None) -> str:
    """The first JSON Lines record: ``{"header": true, "sslmon_version", "schema_version", "config", "started"}``
    (``started``: when the run began, default now)."""
    return json.dumps({"header": True, "sslmon_version": __version__, "schema_version": SCHEMA_VERSION, "config": config,
                       "started": started or now()}, allow_nan=False) + "\n"


def is_header(record: Any) -> bool:
    """Whether a decoded JSON Lines record is a header (:func:`jsonl_header`)."""
    return isinstance(record, dict) and record.get("header") is True


def jsonl_line(item: Result | Failure, rank: int | None = None, digest: str | None = None) -> str:
    """One JSON Lines record: a result (with its ``rank``, None while unranked) or a failure (``"failed": true``;
    with ``digest``, the SHA-256 of the failed file's bytes, so ``sslmon watch`` can resume past it); ``time``: when
    the line is written (:func:`now`)."""
    if isinstance(item, Failure):
        return json.dumps({"failed": True, **asdict(item), **({"digest": digest} if digest else {}), "time": now()}) + "\n"
    return json.dumps({"rank": rank, **item.to_dict(), "time": now()}, allow_nan=False) + "\n"


def to_json(run: Run, rank_by: str) -> str:
    """One JSON document (see docs/results-format.md), keys in a fixed order."""
    return json.dumps(document(run, rank_by), indent=2, allow_nan=False) + "\n"


def to_jsonl(run: Run, rank_by: str, started: str | None = None) -> str:
    """The header (:func:`jsonl_header`), one JSON object per result in rank order (the records of :func:`to_json`:
    with ``rank``, ``flags`` and ``recommended``, and ``time``), then one per failure (``"failed": true``)."""
    stamp = now()
    lines = [json.dumps({**record, "time": stamp}, allow_nan=False) + "\n" for record in document(run, rank_by)["results"]]
    return "".join([jsonl_header(run.config, started)] + lines + [jsonl_line(f) for f in run.failures])


def parse_record(record: Any) -> Result | Failure:
    """One decoded JSON Lines record (:func:`jsonl_line`, not the header) as a Result or a Failure; ValueError naming
    the bad field."""
    if isinstance(record, dict) and "time" in record:
        if not isinstance(record["time"], str):
            raise ValueError(f"'time' has the wrong type ({type(record['time']).__name__})")
        record = {key: value for key, value in record.items() if key != "time"}
    if isinstance(record, dict) and record.get("failed") is True:
        digest = record.get("digest")
        if digest is not None and not isinstance(digest, str):
            raise ValueError(f"'digest' has the wrong type ({type(digest).__name__})")
        return Failure.from_dict({key: value for key, value in record.items() if key not in FAILURE_EXTRAS})
    return Result.from_dict(without_rank(record))


def parse_header(record: dict[str, Any]) -> dict[str, Any]:
    """The config of a JSON Lines header (:func:`jsonl_header`); ValueError naming the bad field."""
    unknown = sorted(set(record) - set(HEADER_FIELDS))
    if unknown:
        raise ValueError(f"header: unexpected fields {unknown}")
    check_schema_version(record.get("schema_version"))
    for key, kind in (("sslmon_version", str), ("config", dict), ("started", str)):
        if not isinstance(record.get(key), kind):
            raise ValueError(f"header: '{key}' missing or of the wrong type")
    return record["config"]


def load_run(path: str | Path, log: Callable[[str], None] | None = None) -> Run:
    """The run in a results file: a JSON document (``score -f json``) or JSON Lines (one record per line; failures
    go to ``Run.failures``; no config). ResultsFileError, one line naming the file, for anything else. A record that
    repeats the (name, digest) of an earlier one (two writers on one file) is dropped, and ``log`` gets one
    ``warning:`` line saying how many."""
    path = Path(path)
    text = read_text(path, MAX_RESULTS_BYTES, ResultsFileError, "the JSON of `sslmon score -f json`")
    if not text.strip():
        raise ResultsFileError(f"{path}: empty (no results yet?)")
    try:
        return _parse(path, text, log)
    except RecursionError:
        raise ResultsFileError(f"{path}: nested too deeply, not an sslmon results file") from None


def _parse(path: Path, text: str, log: Callable[[str], None] | None = None) -> Run:
    """The run in the text of ``path``: a JSON document, else JSON Lines."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":  # more than one JSON value: JSON Lines
            raise ResultsFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return _json_lines(path, text, log)
    except ValueError:  # the one other ValueError of json.loads: an integer too long to convert
        raise ResultsFileError(f"{path}: {TOO_MANY_DIGITS}; not an sslmon results file") from None
    if isinstance(doc, dict) and "results" not in doc and ("metrics" in doc or doc.get("failed") is True or is_header(doc)):
        return _json_lines(path, text, log)  # JSON Lines with a single record
    if not isinstance(doc, dict) or "results" not in doc:
        raise ResultsFileError(f"{path}: not an sslmon results document (no 'results' list; write one with `sslmon score -f json`)")
    try:
        return Run.from_dict(doc)
    except ValueError as exc:
        raise ResultsFileError(f"{path}: {exc}") from None


def record_key(record: dict[str, Any]) -> tuple[str, str] | None:
    """What identifies a JSON Lines record of ``sslmon watch``: (file name, SHA-256 of its bytes), None without a
    digest (``score -f jsonl`` writes none)."""
    source = record.get("source")
    digest = record.get("digest") if record.get("failed") is True else source.get("digest") if isinstance(source, dict) else None
    if not isinstance(digest, str):
        return None
    name = Path(str(record.get("path"))).name if record.get("failed") is True else str(record.get("name"))
    return name, digest


def _json_lines(path: Path, text: str, log: Callable[[str], None] | None = None) -> Run:
    """The records of a JSON Lines file as a run, with the config of its first header (none in files of sslmon < 0.4;
    later headers, from a restarted ``sslmon watch``, are checked and skipped); ResultsFileError naming the file and
    the line. Repeated (name, digest) records are counted once (see :func:`load_run`)."""
    run = Run(config={})
    headers = 0
    seen: set[tuple[str, str]] = set()
    repeated = 0
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            last = " (an unfinished last line: is a writer still at it?)" if number == len(lines) and not text.endswith("\n") else ""
            raise ResultsFileError(f"{path}: line {number} is not valid JSON ({exc.msg}){last}") from None
        except ValueError:  # an integer too long to convert
            raise ResultsFileError(f"{path}: line {number}: {TOO_MANY_DIGITS}") from None
        try:
            if is_header(record):
                config = parse_header(record)
                if not headers:
                    run.config, run.exclude_init = config, config.get("exclude_init") is True
                headers += 1
                continue
            item = parse_record(record)
        except ValueError as exc:
            raise ResultsFileError(f"{path}: line {number}: {exc}") from None
        key = record_key(record)
        if key is not None and key in seen:
            repeated += 1
            continue
        if key is not None:
            seen.add(key)
        (run.failures if isinstance(item, Failure) else run.results).append(item)
    if repeated and log:
        log(f"warning: {path}: {repeated} record(s) repeat the (name, digest) of an earlier one (two writers on one "
            "file?); each is counted once")
    return run
