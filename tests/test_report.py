"""sslmon.report: the table, CSV and JSON Lines renderings of a run; names made printable and CSV cells defused."""

from __future__ import annotations

from rich.console import Console

from helpers import init_run
from sslmon.report import csv_cell, printable, render_table


def test_table_marks_init_and_shows_lp_acc_with_its_standard_error():
    console = Console(record=True, width=250)
    render_table(init_run(True), "rankme", console)
    text = console.export_text()
    assert "0.812 ± 0.006" in text and "0.700 ± 0.010" in text
    assert "0 (init)" in text and "init milestone not ranked" in " ".join(text.split())  # the title may wrap
    assert "lp_acc_se" not in text.replace("lp_acc ± its binomial standard error", "")  # no column of its own


def test_printable_and_csv_cell():
    assert printable("a\nb\x1b[31mc\u202ed\te") == "a\\nb\\x1b[31mc\\u202ed\\te"
    assert printable("épreuve [red]x[/red]") == "épreuve [red]x[/red]"  # markup is not a control character
    assert [csv_cell(t) for t in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", "a=b")] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ok", "a=b"]
