"""The simulated vLLM-like engine (`engine: sim`, `flotilla sim`).

An OpenAI-compatible server that behaves like vLLM under load, so the gateway can be tested and
benchmarked without a GPU:

- API: POST /v1/chat/completions, /v1/completions (stream or not, `usage`,
  `stream_options.include_usage`), /v1/embeddings; GET /v1/models, /health, /metrics (vLLM names,
  or SGLang's, TGI's or llama.cpp's with `metricsDialect`). LoRA adapters (`--lora`) are served as
  models; `--role prefill|decode` plays one side of a disaggregated model (vLLM's NixlConnector protocol).
- Continuous batching after vLLM V1's scheduler (scheduler.py): at most `maxNumSeqs` sequences run;
  the rest wait, first come first served or (`schedulingPolicy: priority`) by the body's `priority`,
  lower first. A KV cache of `numGpuBlocks` blocks of 16 tokens (kv_cache.py; default: never short):
  a running sequence that needs a block when none is free preempts the lowest-priority one, which
  recomputes when it runs again. TTFT and ITL are `ttftMs` (+ `prefillMsPerToken` per prompt token
  computed) and `itlMs`, times `1 + batchSlowdown * (running - 1)` (latency.py).
- Automatic prefix caching (`enablePrefixCaching`): blocks of ended requests stay cached (LRU) and a
  prompt starting with them skips their prefill; `vllm:prefix_cache_queries`/`hits` count tokens.
- Output: one vocabulary word per token; length = max_tokens (or max_completion_tokens), else a
  seeded draw around `outputTokensMean` (exactly the mean with `deterministic`).
- Prompt tokens: ceil(characters / 4), at least 1; token-id prompts count one per id.
- Faults: `errorRate`, `dieMidStreamRate`, or per request the header
  `x-sim-fault: error | die-mid-stream | none` (faults.py).

Entry points: `server.create_sim_app`, `server.run_sim`; tests use `testing.start_sim` and
`testing.SimProcess`.
"""
