"""The results contract in the tests: every JSON document, JSON Lines file and CSV that sslmon writes is checked
against sslmon/schema/results.schema.json with the jsonschema package (an independent validator)."""

from __future__ import annotations

import csv
from importlib.resources import files
import io
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = json.loads((files("sslmon") / "schema" / "results.schema.json").read_text())
Draft202012Validator.check_schema(SCHEMA)


def _validate(instance: Any, definition: str | None = None) -> None:
    """Raise jsonschema's ValidationError unless ``instance`` is valid against the root or ``$defs/definition``."""
    schema = SCHEMA if definition is None else {**SCHEMA, "$ref": f"#/$defs/{definition}"}
    Draft202012Validator(schema).validate(instance)


def check_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A JSON document (``score -f json``), validated; returned as it is."""
    _validate(doc)
    return doc


def check_jsonl(text: str, header: bool = True) -> list[dict[str, Any]]:
    """The records of a JSON Lines text, each validated; with ``header`` the first must be the header (and only it)."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        _validate(record, "jsonl_record")
    if header:
        assert records and records[0].get("header") is True, "JSON Lines without its header record"
        assert not any(r.get("header") for r in records[1:])
    return records


def csv_cell(text: str) -> Any:
    """A CSV cell as a reader such as pandas reads it: empty -> None, an integer or float where it parses as one."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_csv(text: str | Path) -> list[dict[str, Any]]:
    """The rows of a CSV text (or file), cells read by :func:`csv_cell`, each validated against ``$defs/csv_row``."""
    text = text.read_text() if isinstance(text, Path) else text
    rows = [{key: csv_cell(value) for key, value in row.items()} for row in csv.DictReader(io.StringIO(text, newline=""))]
    for row in rows:
        _validate({**row, "name": str(row["name"]), **({"path": str(row["path"])} if row["path"] is not None else {})}, "csv_row")
    return rows
