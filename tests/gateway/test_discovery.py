"""A DNS lookup of a replica name that fails keeps the last known replicas (their health checks
decide), and a model left without a healthy replica answers 503, never an endless wait
(issue 9: item 12). The gateway runs in its own mount namespace with its own /etc/hosts, so the
name really stops resolving for it, and for nothing else on the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from gwstack import STAFF, spec_for
from procs import flotilla, free_port, gateway, running, stop

NAME = "flotilla-test-replica"


def namespace_launcher(hosts) -> list[str]:
    if shutil.which("unshare") is None or subprocess.run(
        ["unshare", "-m", "true"], capture_output=True, check=False
    ).returncode != 0:
        pytest.skip("needs `unshare -m` (root, Linux) to give the gateway its own /etc/hosts")
    return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]


def chat(gw: str, timeout: float = 30) -> tuple[int, dict]:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}).encode()
    req = urllib.request.Request(gw + "/v1/chat/completions", data=body,
                                 headers={"Authorization": f"Bearer {STAFF}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_failed_lookup_keeps_serving_and_a_dead_pool_answers_503(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {NAME}\n")
    launcher = namespace_launcher(hosts)
    sim_port = free_port()
    sim_argv = flotilla("sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", "1", "--itl-ms", "1")
    spec = spec_for(healthIntervalS=0.2, unavailableWaitS=1)
    with running(sim_argv, f"http://127.0.0.1:{sim_port}/health", tmp_path / "sim.log") as sim, gateway(
        tmp_path, spec, {"chat": [f"dns+http://{NAME}:{sim_port}"]}, launcher=launcher
    ) as gw:
        assert chat(gw)[0] == 200
        with open(hosts, "r+") as f:  # in place: the bind mount follows the inode
            f.truncate(0)
        time.sleep(1.0)  # several health rounds with the name unresolvable
        status, _ = chat(gw)
        assert status == 200, "the last known replica still serves"
        log = next(tmp_path.glob("gateway-*.log")).read_text()
        assert "replica discovery for chat failed" in log
        stop(sim)
        status, payload = chat(gw)
        assert status == 503 and payload["error"]["code"] == "model_unavailable"
