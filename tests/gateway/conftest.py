import pytest

from procs import gateway, sim_engine

STAFF = "staff-secret-0001"
STUDENTS = "students-secret-0001"
PEERS = ("peer-a-secret-0001", "peer-b-secret-0001")


def spec_for(model_opts: dict | None = None, **gateway_opts) -> dict:
    return {
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 4, **(model_opts or {})}],
        "gateway": {
            "tokens": [
                {"name": "staff", "token": STAFF, "priority": 10, "threshold": 50},
                {"name": "students", "token": STUDENTS, "priority": 1, "threshold": 50},
                {"name": "peer-a", "token": PEERS[0], "priority": 5, "threshold": 50},
                {"name": "peer-b", "token": PEERS[1], "priority": 5, "threshold": 50},
            ],
            "authRefreshS": 0.5,
            "usageFlushS": 0.2,
            **gateway_opts,
        },
    }


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    """A gateway in front of one quick deterministic sim replica, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("stack")
    with sim_engine(tmp, ttft_ms=1, itl_ms=1, deterministic=True) as sim:
        with gateway(tmp, spec_for(), {"chat": [sim]}) as gw:
            yield {"gateway": gw, "sim": sim, "tmp": tmp}
