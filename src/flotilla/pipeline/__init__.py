"""Pipelines: graphs of models and services (embedding -> retrieval -> rerank -> LLM) served as OpenAI models.

spec/pipelines.py declares them; this package runs them: nodes/ (one module per node kind),
executor.py (a request through the graph), stores/ (vector stores), ingest/ (data prep),
embedserver/ (the local ONNX embedding engine), api.py (the Python API), seed_import.py.
The gateway serves them (gateway/pipelines.py): this package never imports the gateway.
"""
