from pathlib import Path

from flotilla.local.banner import ready_message, token_sources
from flotilla.spec.loader import load_spec

SPEC = """
models:
  - {name: chat, engine: sim, replicas: 2}
gateway:
  tokens:
    - {name: staff, token: "${T_STAFF:-local-staff-secret}", priority: 10, threshold: 50}
    - {name: students, token: "${T_STUDENTS}", priority: 1, threshold: 5}
    - {name: bot, token: "literal-bot-secret", priority: 3}
"""
ENV = {"T_STUDENTS": "students-secret-value"}


def load(tmp_path: Path):
    path = tmp_path / "flotilla.yaml"
    path.write_text(SPEC)
    return load_spec(path, env=ENV), path


def test_sources_say_where_each_value_comes_from(tmp_path):
    spec, path = load(tmp_path)
    staff, students, bot = token_sources(spec, path, env=ENV)
    assert (staff.env_var, staff.env_set, staff.has_default) == ("T_STAFF", False, True)
    assert (students.env_var, students.env_set) == ("T_STUDENTS", True)
    assert bot.env_var is None
    assert "(for local use only)" in staff.describe(path, 0)
    assert students.describe(path, 1) == "value from $T_STUDENTS"
    assert bot.describe(path, 2) == f"value written in {path}, gateway.tokens[2]"


def test_ready_message_has_endpoint_models_examples_and_no_secret(tmp_path):
    spec, path = load(tmp_path)
    text = ready_message(spec, path, ["http://127.0.0.1:8000/v1"], tmp_path / "run", token_sources(spec, path, env=ENV))
    for secret in ("local-staff-secret", "students-secret-value", "literal-bot-secret"):
        assert secret not in text
    assert "http://127.0.0.1:8000/v1" in text
    assert "chat             sim x2" in text
    assert '-H "Authorization: Bearer $T_STAFF"' in text  # the highest priority token
    assert 'api_key=os.environ["T_STAFF"]' in text
    assert "export T_STAFF=" in text  # unset: the user is told to set it
    assert "curl -s http://127.0.0.1:8000/v1/chat/completions" in text
