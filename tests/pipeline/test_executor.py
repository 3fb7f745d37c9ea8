"""The executor on real HTTP services: parallel branches, retries, optional nodes, timeouts, cancellation."""

import asyncio

import pytest

from flotilla.pipeline.calls import HttpModelClient
from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.errors import PipelineError
from flotilla.pipeline.runtime import PipelineRuntime
from flotilla.spec.loader import parse_spec

from pipeline_services import http_service, wait_for

MESSAGES = [{"role": "user", "content": "what?"}]


def http(url: str, outputs: dict, **options) -> dict:
    return {"kind": "http", "url": url, "outputs": outputs, **options}


async def run_pipeline(nodes: dict, flow: list[str]):
    spec = parse_spec({"models": [{"name": "chat", "engine": "sim"}], "pipelines": [{"name": "p", "nodes": nodes, "flow": flow}]}, env={})
    runtime = PipelineRuntime(spec)
    await runtime.open()
    served = runtime.pipelines["p"]
    ctx = RequestContext(client=HttpModelClient(runtime.session, {}), body={"messages": MESSAGES}, stream=False)
    try:
        return await served.executor.run(ctx, "what?"), ctx
    finally:
        await runtime.close()


async def test_independent_branches_run_at_the_same_time():
    async with http_service() as svc:
        nodes = {
            "left": http(svc.at("barrier-left"), {"documents": "documents"}),
            "right": http(svc.at("barrier-right"), {"documents": "documents"}),
            "join": http(svc.at("answer"), {"text": "text"}, inputs={"docs": ["left.documents", "right.documents"]}),
        }
        result, ctx = await run_pipeline(nodes, ["(left, right) >> join"])
    # The barrier answers only once both requests are in: a sequential run would have failed.
    assert result.answer == "answer: from barrier-left, from barrier-right"
    left, right, join = ctx.trace["left"], ctx.trace["right"], ctx.trace["join"]
    assert left.started < right.ended and right.started < left.ended  # the two intervals overlap
    assert join.started >= max(left.ended, right.ended)  # the join waited for both


async def test_failing_node_without_retries_names_the_node():
    async with http_service() as svc:
        nodes = {"docs": http(svc.at("flaky-1"), {"documents": "documents"}), "join": http(svc.at("answer"), {"text": "text"})}
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(nodes, ["docs >> join"])
        assert svc.calls["flaky-1"] == 1 and svc.calls["answer"] == 0
    error = caught.value
    assert (error.status, error.code, error.node) == (502, "pipeline_node_failed", "docs")
    assert "node 'docs' (http) failed" in error.message and "HTTP 503: busy" in error.message
    assert b'"param":"docs"' in error.body()


async def test_retries_recover_from_5xx_but_not_from_4xx():
    async with http_service() as svc:
        nodes = {"docs": http(svc.at("flaky-2"), {"documents": "documents"}, retries=2, backoffS=0.01),
                 "join": http(svc.at("answer"), {"text": "text"})}
        result, ctx = await run_pipeline(nodes, ["docs >> join"])
        assert result.answer == "answer: after retries"
        assert svc.calls["flaky-2"] == 3 and ctx.trace["docs"].attempts == 3

        nodes["docs"] = http(svc.at("bad"), {"documents": "documents"}, retries=3, backoffS=0.01)
        with pytest.raises(PipelineError, match="HTTP 400: bad field"):
            await run_pipeline(nodes, ["docs >> join"])
        assert svc.calls["bad"] == 1  # a 400 will not pass by retrying


async def test_connect_errors_are_retried_then_reported():
    from procs import free_port

    closed = f"http://127.0.0.1:{free_port()}/nothing"
    async with http_service() as svc:
        nodes = {"docs": http(closed, {"documents": "documents"}, retries=1, backoffS=0.01), "join": http(svc.at("answer"), {"text": "text"})}
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(nodes, ["docs >> join"])
    assert caught.value.status == 502 and "after 2 attempts: cannot reach" in caught.value.message


async def test_optional_node_is_skipped_and_its_inputs_pass_on():
    async with http_service() as svc:
        nodes = {
            "docs": http(svc.at("barrier-a"), {"documents": "documents"}),
            "other": http(svc.at("barrier-b"), {"documents": "documents"}),
            "filter": http(svc.at("bad"), {"documents": "documents"}, optional=True),
            "join": http(svc.at("answer"), {"text": "text"}, inputs={"docs": ["filter.documents", "other.documents"]}),
        }
        result, ctx = await run_pipeline(nodes, ["docs >> filter >> join", "other >> join"])
    assert [r.node for r in result.skipped] == ["filter"]
    assert "HTTP 400" in result.skipped[0].error
    # The skipped filter's documents input (docs' output) reached the join in place of its output.
    assert result.answer == "answer: from barrier-a, from barrier-b"


async def test_node_timeout_is_504_and_cancels_the_call():
    async with http_service() as svc:
        nodes = {"docs": http(svc.at("slow"), {"documents": "documents"}, timeoutS=0.3), "join": http(svc.at("answer"), {"text": "text"})}
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(nodes, ["docs >> join"])
        await wait_for(lambda: svc.cancelled == ["slow"], what="the slow service to see its caller leave")
    assert (caught.value.status, caught.value.code, caught.value.node) == (504, "pipeline_node_timeout", "docs")
    assert "timed out after 0.3 s" in caught.value.message


async def test_first_failure_cancels_running_siblings():
    async with http_service() as svc:
        nodes = {
            "fast": http(svc.at("bad"), {"documents": "documents"}),
            "slowpoke": http(svc.at("slow"), {"documents": "documents"}),
            "join": http(svc.at("answer"), {"text": "text"}, inputs={"docs": ["fast.documents", "slowpoke.documents"]}),
        }
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(nodes, ["(fast, slowpoke) >> join"])
        await wait_for(lambda: "slow" in svc.cancelled, what="the sibling's call to be cancelled")
    assert caught.value.node == "fast"


async def test_cancelling_the_request_cancels_upstream_calls():
    async with http_service() as svc:
        nodes = {"docs": http(svc.at("slow"), {"documents": "documents"}), "join": http(svc.at("answer"), {"text": "text"})}
        task = asyncio.ensure_future(run_pipeline(nodes, ["docs >> join"]))
        await wait_for(lambda: svc.calls["slow"] == 1, what="the call to start")
        task.cancel()  # what aiohttp does to a handler whose client hung up
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for(lambda: svc.cancelled == ["slow"], what="the service to see the call go away")
