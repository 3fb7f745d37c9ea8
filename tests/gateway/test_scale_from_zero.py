"""A model autoscaled to zero keeps queueing (issue: the chart in production, autoscaling).

Its replicas come and go as the chart's DNS discovery sees them: the gateway resolves the name of
a headless Service, here from its own /etc/hosts (own mount namespace), which the test fills and
empties. With no replica the requests wait (bounded by maxQueueWaitS) and show in the queue depth
KEDA scales on, instead of a 503 after unavailableWaitS; once a replica appears they complete."""

from __future__ import annotations

import threading
import time

from gwstack import spec_for
from procs import flotilla, free_port, gateway, running
from scaleout import metric
from test_discovery import NAME, chat, namespace_launcher


def depth(gw: str) -> int:
    return int(metric(gw, 'flotilla_queue_depth{model="chat",priority="all"}'))


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_zero_to_n_to_zero_replicas_queues_then_serves(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("")  # scaled to zero: the Service's name has no address
    launcher = namespace_launcher(hosts)
    sim_port = free_port()
    sim_argv = flotilla("sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", "1", "--itl-ms", "1")
    autoscaled = {"autoscaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 2}}
    spec = spec_for(autoscaled, healthIntervalS=0.2, unavailableWaitS=0.5, maxQueueWaitS=8)
    with running(sim_argv, f"http://127.0.0.1:{sim_port}/health", tmp_path / "sim.log"), gateway(
        tmp_path, spec, {"chat": [f"dns+http://{NAME}:{sim_port}"]}, launcher=launcher
    ) as gw:
        results: list[int] = []

        def ask() -> None:
            results.append(chat(gw, timeout=30)[0])

        waiting = [threading.Thread(target=ask) for _ in range(3)]
        for t in waiting:
            t.start()
        wait_until(lambda: depth(gw) == 3, 10, "three requests queued")
        time.sleep(1.5)  # three times unavailableWaitS: a model that is down would have answered 503
        assert results == [] and depth(gw) == 3

        hosts.write_text(f"127.0.0.1 {NAME}\n")  # scaled up: a replica is ready
        for t in waiting:
            t.join(15)
        assert results == [200, 200, 200]  # the requests queued during the scale-up complete

        hosts.write_text("")  # scaled back to zero
        time.sleep(0.6)  # a few health rounds: the replica is gone from the pool
        late: list[int] = []
        started = time.monotonic()
        asker = threading.Thread(target=lambda: late.append(chat(gw, timeout=30)[0]))
        asker.start()
        wait_until(lambda: depth(gw) == 1, 10, "the next request queued")
        time.sleep(1.0)
        assert late == []  # still waiting: no 503 after unavailableWaitS
        asker.join(20)
        assert late == [503] and time.monotonic() - started >= 7.5  # maxQueueWaitS bounds the wait
