"""Counting instructions in process under callgrind, for the bench scripts that measure one
piece (bench/twins.py, bench/audit.py): a script re-runs itself under
`valgrind --tool=callgrind --instr-atstart=no` (`instructions`), sets up uncounted, and
switches counting on from inside (`switch_on`) before the calls it measures. Running N1 and N2
calls and taking (I(N2) - I(N1)) / (N2 - N1) leaves the cost of one call; set-up and the switch
cancel out. PYTHONHASHSEED=0 keeps runs repeatable."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def switch_on() -> None:
    """Inside valgrind: count from here on (callgrind_control on this process)."""
    subprocess.run(
        ["callgrind_control", "--instr=on", str(os.getpid())],
        check=True,
        capture_output=True,
        timeout=300,
    )


def instructions(script: str, *args: str) -> int:
    """Instructions `python SCRIPT ARGS` executed after its `switch_on()`."""
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                script,
                *args,
            ],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
            timeout=1800,
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")
