"""`state.json` in the run folder: what `flotilla up` runs right now (pids, ports, URLs, phases).

Rewritten atomically on every change, so tests and users can read it at any moment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from flotilla.local.supervisor import SupervisedProcess

STATE_FILE = "state.json"


def process_state(process: SupervisedProcess) -> dict[str, Any]:
    spec = process.spec
    return {
        "name": spec.name,
        "role": spec.role,
        "model": spec.model,
        "replica": spec.replica,
        "pid": process.pid,
        "port": spec.port,
        "url": spec.url,
        "health_url": spec.health_url,
        "log": str(spec.log_path),
        "phase": process.phase.value,
        "restarts": process.restarts,
        "last_exit_code": process.last_exit_code,
    }


def write_state(
    run_dir: Path,
    *,
    status: str,
    spec_path: Path,
    endpoint: str,
    gateways: list[SupervisedProcess],
    engines: list[SupervisedProcess],
) -> None:
    state = {
        "status": status,  # starting | ready | stopping | stopped | failed
        "flotilla_up_pid": os.getpid(),
        "spec": str(spec_path.resolve()),
        "run_dir": str(run_dir.resolve()),
        "endpoint": endpoint,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gateway": process_state(gateways[0]),
        "gateways": [process_state(g) for g in gateways],
        "engines": [process_state(e) for e in engines],
    }
    path = run_dir / STATE_FILE
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(partial, path)  # readers never see a half-written file


def read_state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / STATE_FILE).read_text())
