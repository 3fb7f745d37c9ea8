"""One chat request to a pipeline: read the knobs, run the graph, write the answer (whole or streamed).

Errors before the answer starts are PipelineErrors (the caller answers them in OpenAI's format);
once streaming, a failure ends the stream with an error event. Whatever happens, including the
client hanging up (this task is cancelled), the LLM's stream and its replica slot are released.
"""

from __future__ import annotations

from typing import Any

from flotilla.httpserver import Request, Response, StreamResponse
from flotilla.pipeline.answer import AnswerStats, StreamWriter, whole_answer
from flotilla.pipeline.calls import ModelClient
from flotilla.pipeline.context import RequestContext, last_user_text, read_knobs
from flotilla.pipeline.runtime import ServedPipeline


async def serve_chat(
    served: ServedPipeline,
    request: Request,
    body: dict[str, Any],
    client: ModelClient,
    request_id: str,
    stats: AnswerStats,
) -> Response | StreamResponse:
    body = {k: v for k, v in body.items() if k != "model"}
    stream = bool(body.get("stream", False))
    options = body.get("stream_options")
    wants_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    knobs = read_knobs(body)
    ctx = RequestContext(client=client, body=body, stream=stream, knobs=knobs, request_id=request_id)
    served.executor.check_knobs(ctx)
    query = last_user_text(ctx.messages)
    name = served.spec.name
    async with ctx.resources:
        result = await served.executor.run(ctx, query)
        if not stream:
            return whole_answer(name, result, request_id, stats)
        return await StreamWriter(name, result, request_id, wants_usage, stats).write(request)
