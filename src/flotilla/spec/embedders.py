"""Options of the embedding engines: TEI (`tei:`) in the cluster, Flotilla's ONNX engine (`onnx:`) anywhere.

Both answer TEI's API (/embed, /rerank, /info) and OpenAI's /v1/embeddings, so a pipeline node works
the same against either. The options live with their descriptors (flotilla.engines.tei, .onnx).
"""

from flotilla.engines.onnx import OnnxOptions
from flotilla.engines.tei import TeiOptions

__all__ = ["OnnxOptions", "TeiOptions"]
