"""The onnx engine's HTTP server: TEI's /embed, /rerank, /info, /health and OpenAI's /v1/embeddings.

/rerank here is a similarity reranker: it scores each text by the cosine similarity of its embedding
to the query's (not a cross-encoder, which reads query and text together); /info says so.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from flotilla import __version__
from flotilla.pipeline.embedserver.batcher import Batcher
from flotilla.pipeline.embedserver.model import OnnxEmbedder

log = logging.getLogger("flotilla.embedder")
BATCHER = web.AppKey("batcher", Batcher)


class InputError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _tei_error(status: int, message: str) -> web.Response:
    kind = "Validation" if status in (413, 422) else "Backend"
    return web.Response(status=status, body=orjson.dumps({"error": message, "error_type": kind}), content_type="application/json")


def _openai_error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class EmbedderHandlers:
    def __init__(self, model: OnnxEmbedder, batcher: Batcher, served_name: str, max_client_batch_size: int) -> None:
        self.model = model
        self.batcher = batcher
        self.served_name = served_name
        self.max_client_batch_size = max_client_batch_size
        self.registry = CollectorRegistry()
        self.requests = Counter("flotilla_embedder_requests", "Requests by endpoint and status.", ["endpoint", "status"],
                                registry=self.registry)
        self.inputs = Counter("flotilla_embedder_inputs", "Texts embedded.", registry=self.registry)
        self.seconds = Histogram("flotilla_embedder_request_seconds", "Request time by endpoint.", ["endpoint"],
                                 registry=self.registry)

    def _texts(self, value: Any, field: str) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InputError(422, f"`{field}` must be a string or a non-empty list of strings")
        if len(texts) > self.max_client_batch_size:
            raise InputError(413, f"batch size {len(texts)} > maximum allowed batch size {self.max_client_batch_size}")
        return texts

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise InputError(422, f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InputError(422, "the body must be a JSON object")
        return body

    async def _measured(self, endpoint: str, work) -> web.Response:
        started = time.perf_counter()
        response = await work()
        self.requests.labels(endpoint, str(response.status)).inc()
        self.seconds.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def embed(self, request: web.Request) -> web.Response:
        async def work() -> web.Response:
            try:
                body = await self._body(request)
                texts = self._texts(body.get("inputs"), "inputs")
            except InputError as exc:
                return _tei_error(exc.status, str(exc))
            vectors, _ = await self.batcher.embed(texts)
            self.inputs.inc(len(texts))
            return web.Response(body=orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY), content_type="application/json")

        return await self._measured("embed", work)

    async def rerank(self, request: web.Request) -> web.Response:
        async def work() -> web.Response:
            try:
                body = await self._body(request)
                query = body.get("query")
                if not isinstance(query, str) or not query:
                    raise InputError(422, "`query` must be a non-empty string")
                texts = self._texts(body.get("texts"), "texts")
            except InputError as exc:
                return _tei_error(exc.status, str(exc))
            vectors, _ = await self.batcher.embed([query, *texts])
            scores = vectors[1:] @ vectors[0]
            self.inputs.inc(len(texts) + 1)
            ranked = sorted(range(len(texts)), key=lambda i: -float(scores[i]))
            answer = []
            for i in ranked:
                item: dict[str, Any] = {"index": i, "score": float(scores[i])}
                if body.get("return_text"):
                    item["text"] = texts[i]
                answer.append(item)
            return web.Response(body=orjson.dumps(answer), content_type="application/json")

        return await self._measured("rerank", work)

    async def openai_embeddings(self, request: web.Request) -> web.Response:
        async def work() -> web.Response:
            try:
                body = await self._body(request)
                texts = self._texts(body.get("input"), "input")
            except InputError as exc:
                return _openai_error(400 if exc.status == 422 else exc.status, str(exc), "input")
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                return _openai_error(400, "`encoding_format` must be 'float' or 'base64'", "encoding_format")
            vectors, tokens = await self.batcher.embed(texts)
            self.inputs.inc(len(texts))
            data = []
            for i, row in enumerate(vectors):
                value: Any = base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode() if encoding == "base64" else row
                data.append({"object": "embedding", "index": i, "embedding": value})
            answer = {"object": "list", "data": data, "model": body.get("model") or self.served_name,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
            return web.Response(body=orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), content_type="application/json")

        return await self._measured("openai_embeddings", work)

    async def info(self, request: web.Request) -> web.Response:
        m = self.model.info
        return web.json_response({
            "model_id": m.hf_id, "model_dtype": m.dtype, "model_type": {"embedding": {"pooling": "mean"}},
            "rerank": "similarity (cosine between embeddings; not a cross-encoder)",
            "max_input_length": m.max_tokens, "max_client_batch_size": self.max_client_batch_size,
            "max_batch_size": self.batcher.max_batch_size, "auto_truncate": True, "dimensions": m.dimensions,
            "served_model_name": self.served_name, "engine": "flotilla onnx", "version": __version__,
        })

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        card = {"id": self.served_name, "object": "model", "created": 0, "owned_by": "flotilla"}
        return web.json_response({"object": "list", "data": [card]})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_embedder_app(model_name: str, served_name: str, threads: int, max_batch_size: int, max_client_batch_size: int) -> web.Application:
    model = OnnxEmbedder(model_name, threads)
    batcher = Batcher(model, max_batch_size)
    handlers = EmbedderHandlers(model, batcher, served_name, max_client_batch_size)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/embed", handlers.embed)
    app.router.add_post("/rerank", handlers.rerank)
    app.router.add_post("/v1/embeddings", handlers.openai_embeddings)
    app.router.add_get("/info", handlers.info)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/metrics", handlers.metrics)

    async def lifecycle(app: web.Application):
        batcher.start()
        yield
        await batcher.close()

    app.cleanup_ctx.append(lifecycle)
    app[BATCHER] = batcher
    return app
