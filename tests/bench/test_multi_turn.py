"""Multi-turn replay: conversations from ShareGPT files and the shared-system-prompt generator, each turn
carrying the conversation so far with the answers the server gave."""

from __future__ import annotations

import json
import random
import subprocess

import orjson
import pytest
from procs import flotilla, sim_engine

from flotilla.bench.config import BenchConfigError, merge_settings, resolve_plan
from flotilla.bench.conversations import SharedPrefixConversations, sharegpt_conversations
from flotilla.bench.datasets import DatasetError
from flotilla.bench.request import LeanTransport
from flotilla.bench.runner import StepRunner, open_loop_schedule
from flotilla.sim.responses import generated_text
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions

SHAREGPT = [
    {"id": "a", "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "What is a GPU?"},
        {"from": "gpt", "value": "A graphics processor, " * 10},
        {"from": "human", "value": "And a TPU?"},
        {"from": "gpt", "value": "A tensor processor."},
        {"from": "human", "value": "Thanks, bye"},
    ]},
    {"id": "b", "messages": [  # vLLM's converted (OpenAI) format
        {"role": "user", "content": "Hello there, how are you?"},
        {"role": "assistant", "content": "Fine, thank you for asking!"},
    ]},
    {"id": "c", "conversations": [{"from": "gpt", "value": "starts with the model"}]},
    "not a conversation",
]


def write(tmp_path, data) -> str:
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_sharegpt_conversations_keep_the_turns_and_take_answer_lengths(tmp_path):
    source = sharegpt_conversations(write(tmp_path, SHAREGPT), output_len=None, max_turns=10)
    by_first = {c.turns[0].question: c for c in source.items}
    assert set(by_first) == {"What is a GPU?", "Hello there, how are you?"}  # c starts with the model: dropped
    gpu = by_first["What is a GPU?"]
    assert gpu.system == "Be brief."
    # The last question has no answer to size the reply by: dropped without an output length.
    assert [t.question for t in gpu.turns] == ["What is a GPU?", "And a TPU?"]
    assert [t.output_len for t in gpu.turns] == [-(-len("A graphics processor, " * 10) // 4), 5]


def test_sharegpt_conversations_with_an_output_length_and_a_turn_limit(tmp_path):
    source = sharegpt_conversations(write(tmp_path, SHAREGPT), output_len=7, max_turns=2)
    gpu = next(c for c in source.items if c.system)
    assert [(t.question, t.output_len) for t in gpu.turns] == [("What is a GPU?", 7), ("And a TPU?", 7)]
    unlimited = sharegpt_conversations(write(tmp_path, SHAREGPT), output_len=7, max_turns=9)
    assert len(next(c for c in unlimited.items if c.system).turns) == 3  # "Thanks, bye" asks for 7


def test_a_file_without_usable_conversations_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no usable conversations"):
        sharegpt_conversations(write(tmp_path, [{"conversations": [{"from": "gpt", "value": "x"}]}]), None, 4)


def test_messages_hold_the_conversation_so_far():
    source = SharedPrefixConversations(system_prompts=2, system_prompt_len=20, turns=3, input_len=5, output_len=4)
    conversation = source.sample(1, random.Random(1))[0]
    messages = conversation.messages(["first answer", "second answer"], 2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == "first answer" and messages[4]["content"] == "second answer"
    assert messages[5]["content"] == conversation.turns[2].question


def test_generated_conversations_share_few_system_prompts():
    source = SharedPrefixConversations(system_prompts=3, system_prompt_len=50, turns=4, input_len=10, output_len=8)
    conversations = source.sample(60, random.Random(0))
    systems = {c.system for c in conversations}
    assert systems == set(source.prompts()) and len(systems) == 3  # 60 conversations, 3 prompts
    assert all(len(c.turns) == 4 and all(t.output_len == 8 for t in c.turns) for c in conversations)
    assert len({c.turns[0].question for c in conversations}) == 60  # the questions are their own
    assert source.prompts() == SharedPrefixConversations(3, 50, 4, 10, 8).prompts()  # same seed, same prompts


def plan_for(url: str, **settings):
    return resolve_plan(merge_settings(None, {"url": url, "model": "chat", **settings}))


def test_multi_turn_needs_the_chat_endpoint_and_a_conversation_dataset():
    with pytest.raises(BenchConfigError, match="multi-turn conversations need --endpoint chat"):
        plan_for("http://x", endpoint="completions", dataset="conversations", rate=1)
    with pytest.raises(BenchConfigError, match="multi-turn needs 'conversations' or a ShareGPT file"):
        plan_for("http://x", turns=3, rate=1)


def test_an_open_loop_count_sends_exactly_that_many_turns():
    plan = plan_for("http://x", dataset="conversations", turns=4, rate=2, num_requests=10)
    (cls,) = plan.classes
    assert cls.multi_turn and cls.label == "2 conversations/s"
    schedule = open_loop_schedule(plan.classes, plan, plan.seed)
    assert [len(p.conversation.turns) for p in schedule] == [4, 4, 2]  # the last conversation cut short
    assert all(p.measured for p in schedule)


class RecordingTransport(LeanTransport):
    """The real transport, keeping each body it sends (to look at the conversations afterwards)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.bodies: list[dict] = []

    async def send(self, headers, body, record, clock_zero, answer=None):
        self.bodies.append(orjson.loads(body))
        return await super().send(headers, body, record, clock_zero, answer)


@pytest.mark.parametrize("load", [{"concurrency": 3}, {"rate": 20.0}], ids=["closed-loop", "open-loop"])
async def test_replay_sends_each_turn_with_the_answers_the_engine_gave(load):
    options = SimOptions(ttft_ms=1, itl_ms=0, deterministic=True, enable_prefix_caching=True)
    async with start_sim(options, "chat") as sim:
        plan = plan_for(sim.base_url, dataset="conversations", turns=3, system_prompts=2, system_prompt_len=64,
                        input_len=16, output_len=6, num_requests=12, **load)
        transport = RecordingTransport(plan.base_url, plan.path, plan.timeout_s)
        result = await StepRunner(plan, plan.classes, None, "test", transport).run()
        assert result.overall["completed"] == 12 and result.overall["failed"] == 0
        assert len(transport.bodies) == 12
        systems = {b["messages"][0]["content"] for b in transport.bodies}
        assert len(systems) <= 2
        for body in transport.bodies:
            messages = body["messages"]
            turn = (len(messages) - 2) // 2
            assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * turn + ["user"]
            # Every earlier answer is the one the sim generated for 6 tokens, sent back as it came.
            assert all(m["content"] == generated_text(6) for m in messages if m["role"] == "assistant")
        assert max((len(b["messages"]) - 2) // 2 for b in transport.bodies) == 2  # third turns were sent
        # Later turns and shared system prompts hit the engine's prefix cache.
        assert sim.engine.scheduler.prefix_hits > 0


def test_cli_replays_a_sharegpt_file_turn_by_turn(tmp_path):
    path = write(tmp_path, SHAREGPT)
    out = tmp_path / "result.json"
    with sim_engine(tmp_path, model="chat", ttft_ms=1, itl_ms=1, deterministic=True) as url:
        proc = subprocess.run(
            flotilla("bench", "--url", url, "--model", "chat", "--dataset", path, "--turns", "3", "--output-len", "5",
                     "--concurrency", "1", "--num-requests", "5", "--no-progress", "--json", str(out)),
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(out.read_text())
    assert result["completed"] == 5 and result["failed"] == 0
    assert result["total_output_tokens"] == 5 * 5


def test_a_class_may_replay_conversations_of_its_own():
    from flotilla.bench.classes import parse_class

    staff = parse_class("staff:token=t,rate=1,dataset=conversations,turns=3")
    plan = resolve_plan(merge_settings(None, {"url": "http://x", "model": "chat", "rate": 5,
                                              "classes": [staff.model_dump(), {"name": "students"}]}))
    by_name = {c.name: c for c in plan.classes}
    assert by_name["staff"].multi_turn and by_name["staff"].conversations.turns == 3
    assert not by_name["students"].multi_turn and by_name["students"].prompts is not None
