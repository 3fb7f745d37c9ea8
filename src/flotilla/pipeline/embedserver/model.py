"""Running an embedding model of the onnx engine: tokenizer and ONNX Runtime session, pooling, normalising.

The pipeline is sentence-transformers' for all-MiniLM-L6-v2: WordPiece, at most 256 tokens, mean
pooling over real tokens, L2 normalisation. Which files, and their digests: engines/onnx_models.py.
"""

from __future__ import annotations

import threading

import numpy as np

from flotilla.engines.onnx_models import MODELS, verified_path


class OnnxEmbedder:
    """Loads once; `embed` is thread-safe (ONNX Runtime sessions may run concurrently)."""

    def __init__(self, name: str, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.info = MODELS[name]
        tokenizer = Tokenizer.from_file(str(verified_path(self.info.tokenizer)))
        tokenizer.enable_truncation(max_length=self.info.max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(verified_path(self.info.onnx)), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Unit vectors (one row per text) and the number of tokens read."""
        with self._lock:
            encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        vectors = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return vectors.astype(np.float32), int(mask.sum())
