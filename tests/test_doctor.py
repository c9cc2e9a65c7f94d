"""`lambdalet doctor` says what the host offers, loudly when isolation is off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_doctor_reports_runtimes_and_isolation() -> None:
    lambdalet = Path(sys.executable).parent / "lambdalet"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(lambdalet), "doctor"], capture_output=True, text=True, env=env, timeout=60
    )
    assert "python3.11" in result.stdout
    assert "pid namespace" in result.stdout
    assert "seccomp" in result.stdout
    assert "cgroup freezer" in result.stdout and "network namespace" in result.stdout
    off = [line for line in result.stdout.splitlines() if "│ NO " in line]
    if off:  # a host without root, namespaces, cgroups or seccomp
        assert result.returncode == 1
        assert "isolation feature(s) are off on this host" in result.stderr
    else:
        assert result.returncode == 0
