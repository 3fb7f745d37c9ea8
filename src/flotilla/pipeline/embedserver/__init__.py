"""Flotilla's local embedding engine (`engine: onnx`): a transformer embedding model on ONNX Runtime,
shipped inside PyPI packages (nothing is downloaded), speaking TEI's API and OpenAI's /v1/embeddings."""
