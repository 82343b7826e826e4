"""Helpers shared by the CLI safety tests: run the console-script entry point in-process, snapshot a tree."""

from __future__ import annotations

import hashlib
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from sslmon.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``sslmon ARGS`` through the console-script entry point."""
    monkeypatch.setattr(sys, "argv", ["sslmon", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell's background job (``nohup ... &``,
    some CI runners) starts with SIGINT ignored, the child would inherit that and Python would then install no
    KeyboardInterrupt handler. The child gets the default, as under a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of the content ('dir' for folders) of everything under ``root``."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def rankme(Z: np.ndarray) -> float:
    """RankMe by hand (README definition), for checking the scored good input independently."""
    s = np.linalg.svd(Z, compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))
