import json

import pytest
from typer.testing import CliRunner

from flotilla.cli import build_app
from flotilla.spec import SpecError, load_spec_text
from flotilla.spec.schema import spec_json_schema

ISSUE_EXAMPLE = """
models:
  - name: chat              # the OpenAI "model" clients send
    engine: sim
    replicas: 2
    maxConcurrency: 8
    sim: {ttftMs: 50, itlMs: 10, maxNumSeqs: 8}
  - name: remote
    engine: external
    urls: ["http://10.0.0.5:8000"]
gateway:
  port: 8000
  database: sqlite:///./flotilla.db
  tokens:
    - {name: staff,    token: "${STAFF_TOKEN}",   priority: 10, threshold: 50}
    - {name: students, token: "${STUDENT_TOKEN}", priority: 1,  threshold: 5}
"""
ENV = {"STAFF_TOKEN": "staff-secret-1", "STUDENT_TOKEN": "student-secret-1"}


def problems(text, env=ENV):
    with pytest.raises(SpecError) as info:
        load_spec_text(text, env=env)
    return info.value.problems


def test_issue_example_loads():
    spec = load_spec_text(ISSUE_EXAMPLE, env=ENV)
    chat, remote = spec.models
    assert (chat.replicas, chat.max_concurrency, chat.sim.ttft_ms) == (2, 8, 50)
    assert remote.urls == ["http://10.0.0.5:8000"] and remote.replica_count == 1
    assert [(t.name, t.token, t.priority) for t in spec.gateway.tokens] == [
        ("staff", "staff-secret-1", 10), ("students", "student-secret-1", 1)
    ]


def test_every_missing_env_variable_is_named_with_its_path():
    found = problems(ISSUE_EXAMPLE, env={})
    assert found == [
        "gateway.tokens[0].token: environment variable STAFF_TOKEN is not set",
        "gateway.tokens[1].token: environment variable STUDENT_TOKEN is not set",
    ]


def test_env_default_and_escape():
    text = ISSUE_EXAMPLE.replace("${STAFF_TOKEN}", "${NOPE:-fallback-secret}").replace(
        "sqlite:///./flotilla.db", "sqlite:///$${HOME}/x.db"
    )
    spec = load_spec_text(text, env={"STUDENT_TOKEN": "student-secret-1"})
    assert spec.gateway.tokens[0].token == "fallback-secret"
    assert spec.gateway.database == "sqlite:///${HOME}/x.db"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("ttftMs: 50", "ttftMs: -1", "models[0].sim.ttftMs: Input should be greater than or equal to 0 (got -1)"),
        ("maxConcurrency: 8", "maxConcurency: 8", "models[0].maxConcurency: unknown key"),
        ("engine: sim", "engine: gpt", "models[0].engine: Input should be 'sim', 'llamacpp'"),
        ("name: chat ", "name: Chat_1 ", "models[0].name: model name 'Chat_1' must be lowercase"),
        ('urls: ["http://10.0.0.5:8000"]', "urls: []", "models[1]: engine 'external' needs `urls`"),
        ("port: 8000", "port: 70000", "gateway.port: Input should be less than or equal to 65535 (got 70000)"),
        ("name: remote", "name: chat", "(top level): model names must be unique; repeated: chat"),
        ("sqlite:///./flotilla.db", "oracle://x", "gateway.database: database URL 'oracle'"),
    ],
)
def test_errors_name_the_field_path_and_value(old, new, expected):
    found = problems(ISSUE_EXAMPLE.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_secrets_are_not_echoed_in_errors():
    found = problems(ISSUE_EXAMPLE.replace("${STAFF_TOKEN}", "short"))
    assert found and all("short" not in p for p in found)


def test_vllm_requires_its_section_and_defaults_to_priority_scheduling():
    found = problems(ISSUE_EXAMPLE.replace("engine: sim", "engine: vllm"))
    assert any("needs a `vllm:` section" in p for p in found)
    text = ISSUE_EXAMPLE.replace("engine: sim\n", "engine: vllm\n    vllm: {model: meta-llama/Llama-3.1-8B-Instruct}\n")
    spec = load_spec_text(text.replace("    sim: {ttftMs: 50, itlMs: 10, maxNumSeqs: 8}\n", ""), env=ENV)
    assert spec.models[0].forwards_vllm_priority


def test_external_urls_accept_openai_style_base_urls():
    text = ISSUE_EXAMPLE.replace('urls: ["http://10.0.0.5:8000"]', 'urls: ["https://llm.example.org/v1/", "http://10.0.0.6:8000/"]')
    assert load_spec_text(text, env=ENV).models[1].urls == ["https://llm.example.org", "http://10.0.0.6:8000"]


def test_yaml_syntax_error_gives_line():
    found = problems("models: [\n  - name: x\n")
    assert found[0].startswith("line ")


def test_json_schema_covers_spec_keys():
    schema = spec_json_schema()
    assert {"models", "gateway", "benchmark"} <= set(schema["properties"])
    model_def = schema["$defs"]["ModelSpec"]["properties"]
    assert {"maxConcurrency", "engine", "sim", "vllm"} <= set(model_def)


def test_validate_and_schema_commands(tmp_path, monkeypatch):
    good = tmp_path / "good.yaml"
    good.write_text(ISSUE_EXAMPLE)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    app = build_app()
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 model(s)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(ISSUE_EXAMPLE.replace("maxConcurrency: 8", "maxConcurrency: 0"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "models[0].maxConcurrency" in result.output
    result = runner.invoke(app, ["schema"])
    assert json.loads(result.output)["title"] == "Flotilla spec"


BURST_MODEL = """
models:
  - name: chat
    engine: {engine}
    {concurrency}
    priorityBurst: {{minPriority: 10, slots: 4}}
    {options}
"""


@pytest.mark.parametrize(
    "engine, concurrency, options, limit",
    [
        ("sim", "maxConcurrency: 8", "sim: {maxNumSeqs: 10}", "sim.maxNumSeqs"),
        ("sim", "", "sim: {maxNumSeqs: 8}", "sim.maxNumSeqs"),  # the default maxConcurrency fills the engine
        ("llamacpp", "maxConcurrency: 2", "llamacpp: {model: smollm2, nParallel: 4}", "llamacpp.nParallel"),
        ("vllm", "maxConcurrency: 8", "vllm: {model: org/m, maxNumSeqs: 8}", "vllm.maxNumSeqs"),
    ],
)
def test_a_priority_burst_the_engine_cannot_run_is_refused(engine, concurrency, options, limit):
    with pytest.raises(SpecError) as info:
        load_spec_text(BURST_MODEL.format(engine=engine, concurrency=concurrency, options=options))
    message = str(info.value)
    assert "models[0]" in message and "priorityBurst" in message and limit in message


@pytest.mark.parametrize(
    "engine, options",
    [("sim", "sim: {maxNumSeqs: 12}"), ("vllm", "vllm: {model: org/m}")],  # vLLM's own default: 256 sequences
)
def test_a_priority_burst_within_the_engines_room_loads(engine, options):
    spec = load_spec_text(BURST_MODEL.format(engine=engine, concurrency="maxConcurrency: 8", options=options))
    assert spec.models[0].priority_burst.slots == 4
