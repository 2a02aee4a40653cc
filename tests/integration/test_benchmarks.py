"""The benchmarks stay runnable (their numbers are read from their own output, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_deadline_scheduler_benchmark_runs_and_expires_each_due_deadline_once() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "deadline_scheduler.py"),
            "--count",
            "3000",
            "--due",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["open_deadlines"] == 3000 and result["due"] == 30
    assert "creating deadlines: 3,000/3,000" in done.stderr
