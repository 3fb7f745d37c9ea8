"""`flotilla doctor SPEC` on sound and broken set-ups: database down, port taken, model file
missing, broker down, engine not installed, helm missing. Real services where they run here."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from procs import flotilla, free_port  # noqa: E402

TOKENS = [{"name": "user", "token": "doctor-secret-0001", "priority": 1, "threshold": 5}]


def spec(tmp_path: Path, models: list[dict] | None = None, **gateway) -> Path:
    body = {
        "models": models or [{"name": "chat", "engine": "sim"}],
        "gateway": {"port": free_port(), "database": f"sqlite:///{tmp_path}/db/flotilla.db", "tokens": TOKENS,
                    **gateway},
    }
    path = tmp_path / "flotilla.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def doctor(path: Path, *args: str, env: dict | None = None) -> tuple[int, dict[str, dict], str]:
    import os

    done = subprocess.run(flotilla("doctor", str(path), "--json", *args), capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    checks = {c["name"]: c for c in json.loads(done.stdout)} if done.stdout.strip().startswith("[") else {}
    return done.returncode, checks, done.stderr


def problems(checks: dict[str, dict]) -> list[str]:
    return sorted(name for name, c in checks.items() if not c["ok"])


def test_a_sound_local_spec_passes(tmp_path):
    code, checks, err = doctor(spec(tmp_path))
    assert code == 0, (checks, err)
    assert problems(checks) == []
    assert {"tokens", "gateway port", "database", "model chat engine", "model chat image", "helm"} <= set(checks)
    assert "can be written" in checks["database"]["detail"]


def test_the_table_says_what_to_do(tmp_path):
    path = spec(tmp_path, database="postgresql+asyncpg://postgres@127.0.0.1:%d/flotilla" % free_port())
    done = subprocess.run(flotilla("doctor", str(path)), capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert "✗" in done.stdout and "start the database server" in done.stdout and "1 problem(s)" in done.stdout


def test_database_down(tmp_path):
    closed = free_port()
    code, checks, _ = doctor(spec(tmp_path, database=f"postgresql+asyncpg://flotilla:s3cret@127.0.0.1:{closed}/flotilla"))
    assert code == 1 and problems(checks) == ["database"]
    db = checks["database"]
    assert f"127.0.0.1:{closed}" in db["detail"] and "s3cret" not in db["detail"]  # the password is masked
    assert "start the database server" in db["fix"]


@pytest.mark.db
def test_database_up(tmp_path):
    code, checks, _ = doctor(spec(tmp_path, database="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"))
    assert checks["database"]["ok"] and "answers" in checks["database"]["detail"], checks["database"]
    assert code == 0


@pytest.mark.db
def test_database_that_does_not_exist(tmp_path):
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/flotilla_doctor_missing_db"
    code, checks, _ = doctor(spec(tmp_path, database=url))
    assert code == 1 and "flotilla_doctor_missing_db" in checks["database"]["detail"]


def test_port_taken(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, checks, _ = doctor(spec(tmp_path), "--port", str(port))
    assert code == 1 and problems(checks) == ["gateway port"]
    assert f"127.0.0.1:{port} is in use" in checks["gateway port"]["detail"]
    assert "--port" in checks["gateway port"]["fix"]


def test_missing_model_file(tmp_path):
    models = [{"name": "chat", "engine": "llamacpp", "llamacpp": {"model": str(tmp_path / "gone.gguf")}}]
    code, checks, _ = doctor(spec(tmp_path, models))
    assert code == 1 and problems(checks) == ["model chat file"]
    assert "gone.gguf" in checks["model chat file"]["detail"] and "not found" in checks["model chat file"]["detail"]


def test_missing_local_weights_of_a_gpu_engine(tmp_path):
    models = [{"name": "big", "engine": "vllm", "vllm": {"model": str(tmp_path / "weights")}}]
    code, checks, _ = doctor(spec(tmp_path, models), "--for", "up")
    assert code == 1 and "model big file" in problems(checks)


def test_gpu_engine_not_installed_matters_for_up_not_for_render(tmp_path):
    models = [{"name": "big", "engine": "vllm", "vllm": {"model": "meta-llama/Llama-3.2-1B"}}]
    path = spec(tmp_path, models)
    code, checks, _ = doctor(path, "--for", "up")
    assert code == 1 and problems(checks) == ["model big engine"]
    assert "flotilla render" in checks["model big engine"]["fix"]
    code, checks, _ = doctor(path, "--for", "render")
    assert code == 0 and "vllm" in checks["model big image"]["detail"]


def test_broker_down_and_up(tmp_path):
    closed = free_port()
    down = spec(tmp_path, dispatcher={"kind": "rabbitmq", "url": f"amqp://guest:guest@127.0.0.1:{closed}/"})
    code, checks, _ = doctor(down)
    assert code == 1 and problems(checks) == ["broker"] and "start RabbitMQ" in checks["broker"]["fix"]
    assert "guest:guest" not in checks["broker"]["detail"]
    up = spec(tmp_path, dispatcher={"kind": "rabbitmq", "url": "amqp://guest:guest@127.0.0.1:5672/"})
    code, checks, _ = doctor(up)
    assert checks["broker"]["ok"], checks["broker"]


def test_external_engine_unreachable(tmp_path):
    models = [{"name": "remote", "engine": "external", "urls": [f"http://127.0.0.1:{free_port()}"]}]
    code, checks, _ = doctor(spec(tmp_path, models))
    assert code == 1 and problems(checks) == ["model remote"]


def test_helm_missing(tmp_path):
    code, checks, _ = doctor(spec(tmp_path), "--for", "render", env={"FLOTILLA_HELM": str(tmp_path / "no-helm")})
    assert code == 1 and problems(checks) == ["helm"] and "install helm" in checks["helm"]["fix"]


def test_an_invalid_spec_lists_its_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [{name: chat, engine: warp-drive}]\n")
    done = subprocess.run(flotilla("doctor", str(path)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "models" in done.stderr
