"""The sim as its own process: `python -m flotilla.sim` / `flotilla sim`, via SimProcess."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import typer
from typer.testing import CliRunner

from flotilla.sim.commands import register, sim_args
from flotilla.sim.testing import SimProcess
from flotilla.spec.engines import SimOptions


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_options_reach_the_process_and_sigterm_stops_it_cleanly():
    options = SimOptions(ttft_ms=0, itl_ms=0, deterministic=True, output_tokens_mean=5, max_model_len=64)
    process = SimProcess(options, model="tiny", cpus=[0])
    with process as sim:
        assert process.proc is not None
        assert os.sched_getaffinity(process.proc.pid) == {0}
        with urllib.request.urlopen(sim.openai_base_url + "/models", timeout=30) as reply:
            assert json.loads(reply.read())["data"][0]["id"] == "tiny"
        status, body = post(sim.openai_base_url + "/completions", {"model": "tiny", "prompt": "hello"})
        assert status == 200 and body["usage"]["completion_tokens"] == 5
        status, body = post(sim.openai_base_url + "/completions", {"model": "tiny", "prompt": "x" * 400})
        assert status == 400 and "maximum context length is 64 tokens" in body["error"]["message"]
    assert process.proc.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr


def test_sim_args_spell_every_option_as_a_flag():
    args = sim_args(SimOptions(deterministic=True, error_rate=0.5, num_gpu_blocks=512))
    assert args[args.index("--error-rate") + 1] == "0.5"
    assert args[args.index("--num-gpu-blocks") + 1] == "512"
    assert "--deterministic" in args
    assert "--no-deterministic" in sim_args(SimOptions(deterministic=False))
    assert len([a for a in args if a.startswith("--")]) == len(SimOptions.model_fields)
    assert "--num-gpu-blocks" not in sim_args(SimOptions())  # unset: the sim's own default, not "None"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--error-rate", "2"], "--error-rate: Input should be less than or equal to 1"),
        (["--max-num-seqs", "0"], "--max-num-seqs: Input should be greater than or equal to 1"),
        (["--port", "70000"], "--port: must be 0..65535"),
        (["--scheduling-policy", "lifo"], "--scheduling-policy: Input should be 'fcfs' or 'priority'"),
        (["--num-gpu-blocks", "10"], "numGpuBlocks 10 hold 160 tokens, fewer than one sequence of maxModelLen 4096"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv, message):
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # with two commands, `sim` is addressed by name
    result = CliRunner().invoke(app, ["sim", *argv])
    assert result.exit_code == 2
    assert message in result.output


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "flotilla.sim", "--port", str(port)], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_sigint_also_stops_the_process():
    process = SimProcess(SimOptions(ttft_ms=0, itl_ms=0))
    with process:
        assert process.proc is not None
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=30) == 0
