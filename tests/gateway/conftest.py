import pytest
from gwstack import spec_for
from procs import gateway, sim_engine


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    """A gateway in front of one quick deterministic sim replica, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("stack")
    with sim_engine(tmp, ttft_ms=1, itl_ms=1, deterministic=True) as sim:
        with gateway(tmp, spec_for(), {"chat": [sim]}) as gw:
            yield {"gateway": gw, "sim": sim, "tmp": tmp}
