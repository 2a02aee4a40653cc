"""The benchmarks stay runnable (their numbers are read from their own output, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import SKIP_REASON, server_url

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


def test_end_to_end_benchmark_runs_and_reports_both_ratios() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "e2e.py"),
            "--messages",
            "30",
            "--submitters",
            "4",
            "--floor-seconds",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["e2e"]["messages"] == 30
    assert (
        result["crypto_floor"]["messages_per_s"] > 0 and result["tls_floor"]["requests_per_s"] > 0
    )
    assert 0 < result["ratio_to_crypto_floor"] and 0 < result["ratio_to_tls_floor"]


def test_end_to_end_benchmark_runs_on_postgresql_with_two_nodes() -> None:
    server = server_url()
    if server is None:
        pytest.skip(SKIP_REASON)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "e2e.py"),
            *("--messages", "30", "--submitters", "4", "--floor-seconds", "0.5"),
            *("--database", "postgres", "--nodes", "2", "--postgres-url", server),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["database"] == "postgres" and result["e2e"]["nodes"] == 2
    assert set(result["e2e"]["rss_mb"]) == {"BE-DU/0", "BE-DU/1", "NL-DU"}
