"""The gateway with its database failing, on the real PostgreSQL and MariaDB of this machine
(issue 9: items 4, 8 and 11):
- a MariaDB that accepts and never answers fails the start clearly, and nothing is said to listen;
- a database hanging at run time makes readiness false and is logged, while requests are served;
- usage records pending at stop while the database is down are spooled (exit 0) and written by
  the next start; when they cannot even be spooled, the exit status says so.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from dbservers import create_server_database, drop_server_database
from gwstack import STAFF, spec_for
from netfaults import FaultyProxy, silent_server
from procs import flotilla, free_port, gateway_process, sim_engine
from sqlalchemy.engine import make_url

from flotilla.store import Store

pytestmark = pytest.mark.db


@pytest.fixture
def server_database(request):
    backend = request.param
    name = f"flotilla_test_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(create_server_database(backend, name))
    try:
        yield url
    finally:
        asyncio.run(drop_server_database(backend, name))


def via(url: str, proxy: FaultyProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def chat(gw: str) -> int:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}).encode()
    req = urllib.request.Request(gw + "/v1/chat/completions", data=body,
                                 headers={"Authorization": f"Bearer {STAFF}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status


def readiness(gw: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(gw + "/health/ready", timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(condition, what: str, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def stop_and_wait(proc: subprocess.Popen, timeout_s: float = 90.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout_s)


async def usage_count(url: str) -> int:
    store = await Store.open(url, migrate=False)
    try:
        rows = await store.usage_summary(group_by=())
        return rows[0]["requests"] if rows else 0
    finally:
        await store.close()


def test_a_database_that_never_answers_fails_the_start_clearly(tmp_path):
    with silent_server() as port:
        spec = spec_for(database=f"mysql+aiomysql://flotilla:pw@127.0.0.1:{port}/flotilla")
        spec["gateway"]["port"] = free_port()
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        # A hang guard, not a measurement: the start gives up after its 10 s first-query deadline.
        done = subprocess.run(
            flotilla("gateway", str(path), "--endpoint", "chat=http://127.0.0.1:9"),
            capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 1
    assert "cannot start the gateway" in done.stderr and "no answer to a first query" in done.stderr
    assert "listening" not in done.stderr
    assert "pw@" not in done.stderr


@pytest.mark.parametrize("server_database", ["mariadb"], indirect=True)
def test_a_database_hanging_at_run_time_makes_readiness_false_and_is_logged(tmp_path, server_database):
    proxy = FaultyProxy("127.0.0.1", make_url(server_database).port or 3306)
    try:
        with sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as sim, gateway_process(
            tmp_path, spec_for(database=via(server_database, proxy)), {"chat": [sim]}
        ) as gw:
            assert readiness(gw.url)[0] == 200
            proxy.freeze()
            status, body = wait_for(lambda: (r := readiness(gw.url))[0] == 503 and r, "readiness to turn false")
            assert body["store"] == "unreachable"
            assert chat(gw.url) == 200, "requests are served from the cached tokens meanwhile"
            assert "token store unreachable" in gw.log.read_text()
            proxy.thaw()
            wait_for(lambda: readiness(gw.url)[0] == 200, "readiness to come back")
            assert "token store reachable again" in gw.log.read_text()
    finally:
        proxy.close()


@pytest.mark.parametrize("server_database", ["postgresql"], indirect=True)
def test_usage_pending_at_stop_with_the_database_down_is_spooled_then_written(tmp_path, server_database):
    proxy = FaultyProxy("127.0.0.1", make_url(server_database).port or 5432)
    spool = tmp_path / "usage-spool.jsonl"
    spec = spec_for(database=via(server_database, proxy), usageFlushS=3600, usageSpool=str(spool))
    try:
        with sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as sim:
            with gateway_process(tmp_path, spec, {"chat": [sim]}) as gw:
                for _ in range(300):
                    assert chat(gw.url) == 200
                proxy.cut()
                assert stop_and_wait(gw.proc) == 0, gw.log.read_text()[-3000:]
            assert len(spool.read_text().splitlines()) == 300
            assert asyncio.run(usage_count(server_database)) == 0
            proxy.restore()
            with gateway_process(tmp_path, spec, {"chat": [sim]}) as gw:
                assert asyncio.run(usage_count(server_database)) == 300
                assert not spool.exists()
                assert "replaying 300 usage record(s)" in gw.log.read_text()
                assert stop_and_wait(gw.proc) == 0
    finally:
        proxy.close()


@pytest.mark.parametrize("server_database", ["postgresql"], indirect=True)
def test_usage_that_can_be_neither_written_nor_spooled_makes_the_exit_status_non_zero(tmp_path, server_database):
    proxy = FaultyProxy("127.0.0.1", make_url(server_database).port or 5432)
    spec = spec_for(database=via(server_database, proxy), usageFlushS=3600, usageSpool="/proc/flotilla-spool.jsonl")
    try:
        with sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as sim, gateway_process(tmp_path, spec, {"chat": [sim]}) as gw:
            for _ in range(5):
                assert chat(gw.url) == 200
            proxy.cut()
            assert stop_and_wait(gw.proc) == 1
            assert "5 usage record(s) neither written nor spooled" in gw.log.read_text()
    finally:
        proxy.close()
