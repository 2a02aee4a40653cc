"""`make bench`: the end-to-end benchmark (benchmarks/e2e.py) unpaced and paced at 200
messages per second, written as benchmarks/results.json and benchmarks/RESULTS.md with the
machine, the command and the figures, including the two ratios to the floors."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "unpaced": ["--messages", "2000", "--submitters", "16"],
    "paced 200/s": ["--messages", "2000", "--submitters", "16", "--rate", "200"],
}


def main() -> None:
    results = {}
    for name, argv in RUNS.items():
        print(f"running e2e ({name}) ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, str(HERE / "e2e.py"), *argv],
            capture_output=True,
            text=True,
            timeout=3600,
            check=True,
        )
        results[name] = {"command": "python benchmarks/e2e.py " + " ".join(argv)} | json.loads(
            done.stdout
        )
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    (HERE / "results.json").write_text(json.dumps(meta | {"runs": results}, indent=2) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"Measured {meta['when']} on {meta['machine']}, both gateways and the load generator on",
        "the same machine (`make bench`). Targets (issue 9): >= 1,000 acknowledged messages/s",
        "sustained, p99 < 50 ms at 200 messages/s, RSS < 200 MB per gateway, end-to-end >= 25%",
        "of the cryptographic floor.",
        "",
        "| run | ack msg/s | p50 ms | p99 ms | RSS BE/NL MB | crypto floor msg/s | TLS floor req/s "
        "| e2e / crypto | e2e / TLS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        e = r["e2e"]
        lines.append(
            f"| {name} | {e['acknowledged_per_s']} | {e['latency_p50_ms']} | "
            f"{e['latency_p99_ms']} | {e['rss_mb']['BE-DU']} / {e['rss_mb']['NL-DU']} | "
            f"{r['crypto_floor']['messages_per_s']} | {r['tls_floor']['requests_per_s']} | "
            f"{r['ratio_to_crypto_floor']} | {r['ratio_to_tls_floor']} |"
        )
    lines += ["", "Commands:", ""] + [f"- {name}: `{r['command']}`" for name, r in results.items()]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
