"""Two classes through the gateway against a saturated sim: priority shows in the report."""

from __future__ import annotations

import json
import subprocess

from procs import flotilla, gateway, sim_engine

STAFF = "staff-bench-secret-01"
STUDENTS = "students-bench-secret-01"


def test_high_priority_class_keeps_a_low_ttft_while_the_low_one_queues(tmp_path):
    spec = {
        # Two requests at a time per replica: at 20 req/s of ~140 ms requests the students alone
        # offer ~3 times what the replica takes, so their queue in the gateway grows all run long.
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 2}],
        "gateway": {
            "tokens": [
                {"name": "staff", "token": STAFF, "priority": 10, "threshold": 1000},
                {"name": "students", "token": STUDENTS, "priority": 1, "threshold": 1000},
            ],
        },
    }
    out = tmp_path / "priority.json"
    with sim_engine(tmp_path, model="chat", ttft_ms=50, itl_ms=10, max_num_seqs=8, deterministic=True) as sim:
        with gateway(tmp_path, spec, {"chat": [sim]}) as url:
            proc = subprocess.run(
                flotilla(
                    "bench",
                    "--url",
                    url,
                    "--model",
                    "chat",
                    "--duration",
                    "6",
                    "--warmup",
                    "1",
                    "--input-len",
                    "32",
                    "--output-len",
                    "10",
                    "--no-progress",
                    "--json",
                    str(out),
                    "--class",
                    "staff:token-env=BENCH_STAFF,rate=2",
                    "--class",
                    "students:token-env=BENCH_STUDENTS,rate=20",
                ),
                capture_output=True,
                text=True,
                timeout=300,
                env={**__import__("os").environ, "BENCH_STAFF": STAFF, "BENCH_STUDENTS": STUDENTS},
            )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert STAFF not in proc.stdout + proc.stderr and STAFF not in out.read_text()
    result = json.loads(out.read_text())
    staff, students = result["classes"]["staff"], result["classes"]["students"]
    assert staff["failed"] == 0 and students["failed"] == 0
    assert staff["completed"] >= 8 and students["completed"] >= 100
    # Staff wait at most for one running request to finish (~140 ms) before their own 50 ms TTFT;
    # students wait behind a queue that keeps growing.
    assert staff["median_ttft_ms"] < 400
    assert students["median_ttft_ms"] > 4 * staff["median_ttft_ms"]
    assert students["p90_ttft_ms"] > 1000
    assert staff["p99_ttft_ms"] < students["median_ttft_ms"]
