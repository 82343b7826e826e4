"""Start-up: the commands that only print (--help, --version, metrics) import none of the heavy libraries.

Checked in a child process through ``sys.modules`` after the command ran (no timing: what is imported
is what costs the seconds and the memory).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import child_env

HEAVY = ("torch", "torchvision", "sklearn", "umap", "numba", "scipy", "pynndescent", "PIL")
# Run the console script's main(), then print which heavy modules it left loaded (the exit is caught).
PROBE = """
import json, sys
from sslmon.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("\\nLOADED " + json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["metrics"], ["score", "--help"]])
def test_printing_commands_import_no_heavy_library(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stderr.rsplit("LOADED ", 1)[1])
    assert loaded == []
    assert proc.stdout.strip()  # the command did print its text


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a command that does import torch is seen (guards the probe itself)."""
    probe = PROBE.format(heavy=HEAVY).replace("from sslmon.cli import main", "import torch\nfrom sslmon.cli import main")
    proc = subprocess.run([sys.executable, "-c", probe, "--version"], env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert json.loads(proc.stderr.rsplit("LOADED ", 1)[1]) == ["torch"]
