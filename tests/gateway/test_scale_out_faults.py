"""Faults of the distributed dispatcher, against real processes and a real broker: a gateway killed
while it holds slots (the scheduler among them), a replica dying, the broker restarting under load,
and a broker that cannot be reached at start."""

import asyncio
import contextlib
import os
import signal
import time

import openai
import pytest
from gwstack import STAFF, STUDENTS
from procs import free_port, sim_engine, sim_process
from rabbitmq import private_broker, require_shared_broker
from scaleout import (
    Client,
    cleanup,
    gateway_process,
    peak_in_engine,
    ready_detail,
    scale_out_spec,
    unique_prefix,
    wait_for,
)

SIM = {"ttft_ms": 20, "itl_ms": 10, "max_num_seqs": 4, "batch_slowdown": 0, "deterministic": True}


@pytest.mark.parametrize("victim", ["scheduler", "other"])
async def test_a_killed_gateway_gives_its_slots_back_and_the_rest_stay_counted(tmp_path, victim):
    url, prefix = require_shared_broker(), unique_prefix()
    spec = scale_out_spec(url, prefix, {"maxConcurrency": 4})
    with cleanup(url, prefix), sim_engine(tmp_path, **SIM) as sim, contextlib.ExitStack() as stack:
        started_gws = [stack.enter_context(gateway_process(tmp_path, spec, [sim])) for _ in range(3)]
        # The first gateway to consume the queue is its active consumer: the scheduler.
        order = [0, 1, 2] if victim == "scheduler" else [1, 0, 2]
        (killed, killed_proc), (asker, _), (holder, _) = (started_gws[i] for i in order)
        ck, ca, ch = Client(killed, STUDENTS), Client(asker, STAFF), Client(holder, STUDENTS)
        try:
            held_by_killed = [asyncio.create_task(ck.stream(f"k{i}", 1000)) for i in range(2)]  # 10 s each
            scheduler = started_gws[0][0]
            await wait_for(lambda: "chat" in ready_detail(scheduler)[1]["dispatcher"]["scheduling"], 10, "a scheduler")
            held_by_holder = [asyncio.create_task(ch.stream(f"h{i}", 150)) for i in range(2)]  # ~1.5 s each
            await asyncio.sleep(0.5)
            started: dict[str, float] = {}
            waiting = [asyncio.create_task(ca.stream(f"w{i}", 5, started)) for i in range(4)]
            await asyncio.sleep(0.3)
            assert not started, "all four slots are taken: the asker's requests wait"
            killed_at = time.monotonic()
            os.killpg(killed_proc.pid, signal.SIGKILL)
            killed_proc.wait()
            await asyncio.gather(*waiting)
            await asyncio.gather(*held_by_holder)
        finally:
            for client in (ck, ca, ch):
                await client.close()
        for task in held_by_killed:
            assert task.done() and task.exception() is not None  # its clients lost their gateway
        first = min(started.values()) - killed_at
        assert first < 5.0, f"the killed gateway's slots came back after {first:.2f} s"
        # The holder's two slots stayed counted (by a new scheduler's census, or the old one's books):
        # never more than 4 requests inside the engine.
        assert peak_in_engine(sim) == 4


async def test_a_dying_replica_fails_its_requests_and_its_waiting_work_goes_elsewhere(tmp_path):
    url, prefix = require_shared_broker(), unique_prefix()
    spec = scale_out_spec(url, prefix, {"maxConcurrency": 2}, healthIntervalS=0.5)
    with cleanup(url, prefix), sim_process(tmp_path, **SIM) as (sim_a, sim_a_proc), \
            sim_engine(tmp_path, **SIM) as sim_b, contextlib.ExitStack() as stack:
        gws = [stack.enter_context(gateway_process(tmp_path, spec, [sim_a, sim_b])) for _ in range(2)]
        clients = [Client(g, STUDENTS) for g, _ in gws]
        try:
            running = [asyncio.create_task(clients[i % 2].stream(f"run{i}", 300)) for i in range(4)]  # 3 s
            await asyncio.sleep(0.5)
            waiting = [asyncio.create_task(clients[i % 2].stream(f"wait{i}", 5)) for i in range(4)]
            await asyncio.sleep(0.3)
            os.killpg(sim_a_proc.pid, signal.SIGKILL)
            results = await asyncio.wait_for(asyncio.gather(*running, *waiting, return_exceptions=True), 60)
        finally:
            for client in clients:
                await client.close()
    outcomes = ["error" if isinstance(r, Exception) else "ok" for r in results]
    assert outcomes[:4].count("error") == 2, results[:4]  # the two running on the dead replica
    assert all(isinstance(r, openai.APIError) for r in results[:4] if isinstance(r, Exception))
    assert outcomes[4:] == ["ok"] * 4, results[4:]  # waiting work went to the other replica


async def test_broker_restart_under_load_ends_every_request_and_recovers(tmp_path):
    with private_broker(tmp_path) as broker:
        prefix = unique_prefix()
        spec = scale_out_spec(broker.url, prefix, {"maxConcurrency": 2}, unavailableWaitS=5)
        with sim_engine(tmp_path, **{**SIM, "itl_ms": 5}) as sim, contextlib.ExitStack() as stack:
            gws = [stack.enter_context(gateway_process(tmp_path, spec, [sim]))[0] for _ in range(2)]
            statuses: list[tuple[float, int | str]] = []
            deadline = time.monotonic() + 12
            outage: dict[str, float] = {}

            async def user(i):
                api = openai.AsyncOpenAI(base_url=gws[i % 2] + "/v1", api_key=STUDENTS, max_retries=0, timeout=40)
                try:
                    while time.monotonic() < deadline:
                        try:
                            await api.chat.completions.create(
                                model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=10
                            )
                            statuses.append((time.monotonic(), 200))
                        except openai.APIStatusError as exc:
                            statuses.append((time.monotonic(), exc.status_code))
                            await asyncio.sleep(0.05)
                        except openai.APIError as exc:
                            statuses.append((time.monotonic(), type(exc).__name__))
                            await asyncio.sleep(0.05)
                finally:
                    await api.close()

            async def fault():
                await asyncio.sleep(2)
                outage["stopped"] = time.monotonic()
                await asyncio.to_thread(broker.stop_app)
                await asyncio.sleep(2)
                await asyncio.to_thread(broker.start_app)
                outage["started"] = time.monotonic()

            await asyncio.wait_for(asyncio.gather(*(user(i) for i in range(6)), fault()), 60)
            assert {s for _, s in statuses} <= {200, 503}, sorted({str(s) for _, s in statuses})
            after = [t for t, s in statuses if s == 200 and t > outage["started"]]
            assert after, "nothing succeeded after the broker came back"
            assert after[0] - outage["started"] < 10, f"first success {after[0] - outage['started']:.1f} s after restart"
            for g in gws:
                await wait_for(lambda g=g: ready_detail(g)[0] == 200, 10, f"{g} ready again")


async def test_broker_unreachable_at_start_means_not_ready_and_clear_503s(tmp_path):
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    spec = scale_out_spec(closed, unique_prefix(), unavailableWaitS=1)
    with sim_engine(tmp_path, **SIM) as sim, gateway_process(tmp_path, spec, [sim], ready=False) as (gw, _):
        status, detail = ready_detail(gw)
        assert status == 503 and detail["dispatcher"]["connected"] is False
        assert "127.0.0.1" in detail["dispatcher"]["broker"] and "guest" not in str(detail)  # no credentials
        api = openai.AsyncOpenAI(base_url=gw + "/v1", api_key=STUDENTS, max_retries=0, timeout=20)
        try:
            started = time.monotonic()
            with pytest.raises(openai.APIStatusError) as info:
                await api.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
            assert info.value.status_code == 503 and "dispatch broker" in info.value.message
            assert time.monotonic() - started < 10
        finally:
            await api.close()
