"""The simulated vLLM-like engine's HTTP server (aiohttp + uvloop + orjson).

Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models, /health,
/metrics. With ttft = itl = 0 a request is answered in one write with no timer at all; otherwise
it takes a slot in the batch (FIFO when full) and emits tokens on absolute deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from time import perf_counter

import orjson
import uvloop
from aiohttp import web

from flotilla.sim.engine import SimEngine, sleep_until
from flotilla.sim.errors import SimError, bad_request, error_body
from flotilla.sim.faults import FAULT_HEADER, Fault
from flotilla.sim.kv_cache import BlockHashes
from flotilla.sim.protocol import (
    GenerationRequest,
    check_model,
    parse_embedding_inputs,
    parse_generation,
    parse_json_object,
    parse_priority,
    prompt_block_hashes,
)
from flotilla.sim.responses import DONE_FRAME, EMBEDDING_DIM, ResponseFactory
from flotilla.spec.engines import SimOptions

SIM_ENGINE = web.AppKey("sim_engine", SimEngine)

_JSON_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_METRICS_HEADERS = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
_MAX_BODY_BYTES = 64 * 1024 * 1024


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers=_JSON_HEADERS)


def _error(exc: SimError) -> web.Response:
    return _json(exc.body(), exc.status)


def _injected_error() -> web.Response:
    return _json(error_body(500, "Simulated engine failure (fault injection)."), 500)


def _drop_connection(request: web.Request) -> None:
    """Close the connection as a crashing engine would: no terminating chunk, no [DONE]."""
    transport = request.transport
    if transport is not None:
        transport.close()  # flushes what was already written, then FIN


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    engine = request.app[SIM_ENGINE]
    max_model_len = engine.options.max_model_len
    try:
        body = parse_json_object(await request.read())
        name = check_model(body, engine.model_name, engine.adapters)
        gen = parse_generation(body, chat, max_model_len)
        gen.priority = parse_priority(body, engine.options.scheduling_policy)
        fault = engine.faults.decide(request.headers.get(FAULT_HEADER), gen.stream)
        transfer = kv_transfer_of(engine, body)
    except SimError as exc:
        return _error(exc)
    if fault is Fault.ERROR:
        return _injected_error()
    engine.requests_by_name[name] += 1
    responses = engine.responses_by_name[name]
    room = max_model_len - gen.prompt_tokens
    n_tokens = engine.output_length.draw(gen.max_tokens, room)
    finish_reason = "length" if gen.max_tokens is not None or n_tokens == room else "stop"
    if engine.latency.instant and fault is None and transfer is None and not engine.pool.prefix_caching:
        return await _answer_instantly(engine, gen, n_tokens, finish_reason, responses)
    hashes = prompt_block_hashes(body, chat) if engine.pool.prefix_caching else None
    return await _answer_in_time(request, engine, gen, n_tokens, finish_reason, fault, responses, hashes, transfer)


def kv_transfer_of(engine: SimEngine, body: dict) -> str | None:
    """'prefill' (compute the KV cache for a remote decode) or 'decode' (the cache comes from a
    prefill), following vLLM's NixlConnector parameters; None for an ordinary request."""
    params = body.get("kv_transfer_params")
    if params is None or engine.role is None:
        return None
    if not isinstance(params, dict):
        raise bad_request("`kv_transfer_params` must be an object", "kv_transfer_params")
    if engine.role == "prefill" and params.get("do_remote_decode"):
        return "prefill"
    if engine.role == "decode" and params.get("do_remote_prefill"):
        if not params.get("remote_engine_id") or not isinstance(params.get("remote_block_ids"), list):
            raise bad_request("kv_transfer_params from a prefill need remote_engine_id and remote_block_ids",
                              "kv_transfer_params")
        return "decode"
    return None


async def _answer_instantly(
    engine: SimEngine, gen: GenerationRequest, n_tokens: int, finish_reason: str, responses: ResponseFactory
) -> web.Response:
    """No simulated time: the whole answer in one write, no timers (the benchmark path)."""
    arrival = perf_counter()
    scheduler = engine.scheduler
    seq = None
    if not scheduler.try_admit():
        # Only while timed requests fill the batch (fault injection): wait in line, holding no KV.
        seq = scheduler.sequence(gen.priority, arrival, 0)
        try:
            await scheduler.start(seq)
        except BaseException:
            scheduler.leave(seq)
            raise
    try:
        if gen.stream:
            frames = responses.stream(gen.chat)
            payload = frames.whole(n_tokens, finish_reason, gen.prompt_tokens, gen.include_usage)
            response = web.Response(body=payload, headers=_SSE_HEADERS)
        else:
            response = _json(responses.completion(gen.chat, n_tokens, finish_reason, gen.prompt_tokens))
    finally:
        if seq is None:
            scheduler.release()
        else:
            scheduler.leave(seq)
    waited = perf_counter() - arrival
    metrics = engine.metrics
    metrics.prompt_tokens += gen.prompt_tokens
    metrics.generation_tokens += n_tokens
    metrics.ttft.observe(waited)
    if n_tokens > 1:
        metrics.inter_token.observe(0.0, n_tokens - 1)
    metrics.finished(finish_reason, e2e=waited, queued=waited)
    return response


async def _answer_in_time(
    request: web.Request,
    engine: SimEngine,
    gen: GenerationRequest,
    n_tokens: int,
    finish_reason: str,
    fault: Fault | None,
    responses: ResponseFactory,
    hashes: BlockHashes | None = None,
    transfer: str | None = None,
) -> web.StreamResponse:
    arrival = perf_counter()
    extra: dict | None = None
    if transfer == "prefill":
        # The prefill computes the prompt's KV cache and one token; the decode side pulls the cache.
        n_tokens, finish_reason, gen.stream = 1, "length", False
        engine.prefills += 1
        extra = {"kv_transfer_params": {
            "do_remote_prefill": True, "do_remote_decode": False, "remote_engine_id": engine.engine_id,
            "remote_block_ids": list(range(max(1, -(-gen.prompt_tokens // 16)))), "remote_host": "127.0.0.1",
            "remote_port": 5600, "tp_size": 1,
        }}
    elif transfer == "decode":
        engine.kv_transfers += 1
    scheduler, latency, metrics = engine.scheduler, engine.latency, engine.metrics
    cut_at = n_tokens // 2 if fault is Fault.DIE_MID_STREAM else -1
    stream: web.StreamResponse | None = None
    frames = None
    if gen.stream:
        # Like vLLM, the response starts as soon as the request is accepted, even if it must wait.
        stream = web.StreamResponse(headers=_SSE_HEADERS)
        try:
            await stream.prepare(request)
        except ConnectionError:
            return stream  # the client already left
        frames = responses.stream(gen.chat)

    seq = scheduler.sequence(gen.priority, arrival, gen.prompt_tokens, hashes)
    admitted = arrival
    outcome = "abort"
    try:
        computed = await scheduler.start(seq)
        admitted = perf_counter()
        if transfer == "decode":  # the KV cache arrives from the prefill instead of being computed
            first = engine.options.kv_transfer_ms / 1000.0
        else:
            first = latency.time_to_first_token(scheduler.running, gen.prompt_tokens - computed)
        deadline = admitted + first
        last = admitted
        i = 0
        while i < n_tokens:
            await sleep_until(deadline)
            if not scheduler.grow(seq):
                # Preempted (its blocks went to a more urgent sequence): wait in line again, then
                # recompute prompt and generated tokens, less what the prefix cache still holds.
                computed = await scheduler.resume(seq)
                deadline = perf_counter() + latency.time_to_first_token(scheduler.running, seq.tokens - computed)
                continue
            now = perf_counter()
            if i:
                metrics.inter_token.observe(now - last)
            else:
                metrics.ttft.observe(now - arrival)
                metrics.prompt_tokens += gen.prompt_tokens
            last = now
            if i == cut_at:
                _drop_connection(request)
                return stream if stream is not None else web.Response()
            metrics.generation_tokens += 1
            if stream is not None and frames is not None:
                frame = frames.last_token(i, finish_reason) if i == n_tokens - 1 else frames.token(i)
                await stream.write(frames.opening() + frame if i == 0 else frame)
            i += 1
            deadline += latency.inter_token(scheduler.running)
        outcome = finish_reason
    except ConnectionError:
        return stream if stream is not None else web.Response()  # the client left: an abort
    finally:
        scheduler.leave(seq)
        end = perf_counter()
        metrics.finished(outcome, e2e=end - arrival, queued=admitted - arrival)

    if stream is None:
        return _json(responses.completion(gen.chat, n_tokens, finish_reason, gen.prompt_tokens, extra))
    assert frames is not None
    tail = frames.usage(gen.prompt_tokens, n_tokens) + DONE_FRAME if gen.include_usage else DONE_FRAME
    try:
        await stream.write(tail)
        await stream.write_eof()
    except ConnectionError:
        pass
    return stream


async def embeddings(request: web.Request) -> web.Response:
    engine = request.app[SIM_ENGINE]
    try:
        body = parse_json_object(await request.read())
        check_model(body, engine.model_name, engine.adapters)
        inputs = parse_embedding_inputs(body)
        dimensions = body.get("dimensions") or EMBEDDING_DIM
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
            raise bad_request(f"`dimensions` must be an integer from 1 to 4096, got {dimensions!r}", "dimensions")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise bad_request(f"`encoding_format` must be 'float' or 'base64', got {encoding!r}", "encoding_format")
        if engine.faults.decide(request.headers.get(FAULT_HEADER), stream=False) is Fault.ERROR:
            return _injected_error()
    except SimError as exc:
        return _error(exc)
    engine.metrics.prompt_tokens += sum(tokens for _, tokens in inputs)
    return _json(engine.responses.embeddings(inputs, dimensions, encoding == "base64"))


async def models(request: web.Request) -> web.Response:
    engine = request.app[SIM_ENGINE]
    cards = [r.card(engine.options.max_model_len, engine.started_at) for r in engine.responses_by_name.values()]
    return _json(orjson.dumps({"object": "list", "data": cards}))


async def health(request: web.Request) -> web.Response:
    return web.Response()


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[SIM_ENGINE].render_metrics(), headers=_METRICS_HEADERS)


def create_sim_app(
    options: SimOptions, model_name: str, adapters: tuple[str, ...] = (), role: str | None = None
) -> web.Application:
    """The sim's aiohttp application serving `model_name` (run it with handler_cancellation=True
    so a client that hangs up frees its batch slot, as vLLM aborts such requests)."""
    if not model_name:
        raise ValueError("model_name must not be empty")
    app = web.Application(client_max_size=_MAX_BODY_BYTES)
    app[SIM_ENGINE] = SimEngine(options, model_name, adapters, role)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """An AppRunner set up the way the sim is meant to run: no access log, hang-ups cancel handlers."""
    return web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5.0)


async def serve_until_stopped(
    options: SimOptions, model_name: str, host: str, port: int, adapters: tuple[str, ...] = (), role: str | None = None
) -> None:
    runner = make_runner(create_sim_app(options, model_name, adapters, role))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound_port = runner.addresses[0][1]
        # One parseable line: launchers (flotilla.sim.testing, local runner) read the port from it.
        print(f"flotilla sim: serving model {model_name!r} on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_sim(
    options: SimOptions, model_name: str, host: str = "127.0.0.1", port: int = 8000,
    adapters: tuple[str, ...] = (), role: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (blocking, on uvloop). Port 0 picks a free port; the bound
    port is printed on stdout as `... on http://HOST:PORT`."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        uvloop.run(serve_until_stopped(options, model_name, host, port, adapters, role))
    except OSError as exc:
        print(f"flotilla sim: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(1) from None
