{{/*
Engine arguments and environment, computed from a merged model (see "flotilla.model").
vLLM, SGLang and TGI mirror ENGINE.server_args / server_env of flotilla/engines/<kind>.py:
tests/chart renders both and requires them equal. Every helper returns JSON.
ctx: dict "root" $ "model" MERGED_MODEL "port" PORT
*/}}

{{- define "flotilla.args.vllm" -}}
{{- $m := .model -}}
{{- $o := $m.vllm -}}
{{- $args := list $o.model "--host" "0.0.0.0" "--port" (toString .port) "--served-model-name" ($m.servedModelName | default $m.name) -}}
{{- if $o.revision }}{{ $args = concat $args (list "--revision" $o.revision) }}{{ end -}}
{{- if $o.dtype }}{{ $args = concat $args (list "--dtype" $o.dtype) }}{{ end -}}
{{- if $o.quantization }}{{ $args = concat $args (list "--quantization" $o.quantization) }}{{ end -}}
{{- if not (kindIs "invalid" $o.maxModelLen) }}{{ $args = concat $args (list "--max-model-len" (include "flotilla.num" $o.maxModelLen)) }}{{ end -}}
{{- if not (kindIs "invalid" $o.gpuMemoryUtilization) }}{{ $args = concat $args (list "--gpu-memory-utilization" (include "flotilla.num" $o.gpuMemoryUtilization)) }}{{ end -}}
{{- $args = concat $args (list "--tensor-parallel-size" (include "flotilla.num" $o.tensorParallelSize)) -}}
{{- if $o.ropeScaling.enabled -}}
{{- $parameters := fromJson $o.ropeScaling.jsonConfiguration -}}
{{- if or (not (kindIs "map" $parameters)) (hasKey $parameters "Error") -}}
{{- fail (printf "models[%s].vllm.ropeScaling.jsonConfiguration must be a JSON object, got %q" $m.name $o.ropeScaling.jsonConfiguration) -}}
{{- end -}}
{{- if not (kindIs "invalid" $o.ropeScaling.theta) }}{{ $_ := set $parameters "rope_theta" $o.ropeScaling.theta }}{{ end -}}
{{- $args = concat $args (list "--hf-overrides" (dict "rope_parameters" $parameters | toJson)) -}}
{{- end -}}
{{- if $o.trustRemoteCode }}{{ $args = append $args "--trust-remote-code" }}{{ end -}}
{{- $args = concat $args (list "--scheduling-policy" $o.schedulingPolicy) -}}
{{- if not (kindIs "invalid" $o.maxNumSeqs) }}{{ $args = concat $args (list "--max-num-seqs" (include "flotilla.num" $o.maxNumSeqs)) }}{{ end -}}
{{- concat $args $o.extraArgs | toJson -}}
{{- end -}}

{{- define "flotilla.args.sglang" -}}
{{- $m := .model -}}
{{- $o := $m.sglang -}}
{{- $args := list "--model-path" $o.model "--host" "0.0.0.0" "--port" (toString .port) "--served-model-name" ($m.servedModelName | default $m.name) -}}
{{- if $o.revision }}{{ $args = concat $args (list "--revision" $o.revision) }}{{ end -}}
{{- if $o.dtype }}{{ $args = concat $args (list "--dtype" $o.dtype) }}{{ end -}}
{{- if $o.quantization }}{{ $args = concat $args (list "--quantization" $o.quantization) }}{{ end -}}
{{- if not (kindIs "invalid" $o.contextLength) }}{{ $args = concat $args (list "--context-length" (include "flotilla.num" $o.contextLength)) }}{{ end -}}
{{- if not (kindIs "invalid" $o.memFractionStatic) }}{{ $args = concat $args (list "--mem-fraction-static" (include "flotilla.num" $o.memFractionStatic)) }}{{ end -}}
{{- $args = concat $args (list "--tp-size" (include "flotilla.num" $o.tensorParallelSize)) -}}
{{- if $o.trustRemoteCode }}{{ $args = append $args "--trust-remote-code" }}{{ end -}}
{{- $args = append $args "--enable-metrics" -}}
{{- concat $args $o.extraArgs | toJson -}}
{{- end -}}

{{/* TGI takes its settings as environment variables; only extraArgs are arguments. */}}
{{- define "flotilla.env.tgi" -}}
{{- $o := .model.tgi -}}
{{- $env := list (dict "name" "MODEL_ID" "value" $o.model) -}}
{{- if $o.revision }}{{ $env = append $env (dict "name" "REVISION" "value" $o.revision) }}{{ end -}}
{{- if not (kindIs "invalid" $o.maxInputLength) }}{{ $env = append $env (dict "name" "MAX_INPUT_LENGTH" "value" (include "flotilla.num" $o.maxInputLength)) }}{{ end -}}
{{- if not (kindIs "invalid" $o.maxTotalTokens) }}{{ $env = append $env (dict "name" "MAX_TOTAL_TOKENS" "value" (include "flotilla.num" $o.maxTotalTokens)) }}{{ end -}}
{{- if $o.quantize }}{{ $env = append $env (dict "name" "QUANTIZE" "value" $o.quantize) }}{{ end -}}
{{- $env = append $env (dict "name" "NUM_SHARD" "value" (include "flotilla.num" $o.numShard)) -}}
{{- if $o.dtype }}{{ $env = append $env (dict "name" "DTYPE" "value" $o.dtype) }}{{ end -}}
{{- $env = append $env (dict "name" "HOSTNAME" "value" "0.0.0.0") -}}
{{- $env = append $env (dict "name" "PORT" "value" (toString .port)) -}}
{{- toJson $env -}}
{{- end -}}

{{- define "flotilla.args.tgi" -}}
{{- .model.tgi.extraArgs | toJson -}}
{{- end -}}

{{/* Flotilla's simulated engine: the same flags as flotilla/engines/sim.py, listening on every interface. */}}
{{- define "flotilla.args.sim" -}}
{{- $m := .model -}}
{{- $o := $m.sim -}}
{{- $args := list "sim" "--port" (toString .port) "--model" ($m.servedModelName | default $m.name) -}}
{{- $args = concat $args (list "--ttft-ms" (include "flotilla.num" $o.ttftMs) "--itl-ms" (include "flotilla.num" $o.itlMs)) -}}
{{- $args = concat $args (list "--max-num-seqs" (include "flotilla.num" $o.maxNumSeqs) "--batch-slowdown" (include "flotilla.num" $o.batchSlowdown)) -}}
{{- $args = concat $args (list "--output-tokens-mean" (include "flotilla.num" $o.outputTokensMean) "--seed" (include "flotilla.num" $o.seed)) -}}
{{- $args = concat $args (list "--error-rate" (include "flotilla.num" $o.errorRate) "--die-mid-stream-rate" (include "flotilla.num" $o.dieMidStreamRate)) -}}
{{- $args = concat $args (list "--max-model-len" (include "flotilla.num" $o.maxModelLen)) -}}
{{- if $o.deterministic }}{{ $args = append $args "--deterministic" }}{{ end -}}
{{- concat $args (list "--host" "0.0.0.0") | toJson -}}
{{- end -}}

{{/*
llama.cpp's own server (llama-server), not llama-cpp-python: its flags differ, so they are
written here. `model` is "smollm2" (the GGUF shipped in Flotilla's image, copied to the cache by
an init container), an absolute .gguf path on the cache volume, or a Hugging Face repo id
(with `file`) that llama-server downloads into LLAMA_CACHE on the cache volume.
*/}}
{{- define "flotilla.llamacpp.smollm2Path" -}}
{{- printf "%s/flotilla/SmolLM2-135M-Instruct.Q4_1.gguf" .model.cache.mountPath -}}
{{- end -}}

{{- define "flotilla.args.llamacpp" -}}
{{- $m := .model -}}
{{- $o := $m.llamacpp -}}
{{- $args := list "--host" "0.0.0.0" "--port" (toString .port) "--alias" ($m.servedModelName | default $m.name) -}}
{{- if eq $o.model "smollm2" -}}
{{- $args = concat $args (list "--model" (include "flotilla.llamacpp.smollm2Path" .)) -}}
{{- else if hasPrefix "/" $o.model -}}
{{- $args = concat $args (list "--model" $o.model) -}}
{{- else if regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$" $o.model -}}
{{- $args = concat $args (list "--hf-repo" $o.model) -}}
{{- if $o.file }}{{ $args = concat $args (list "--hf-file" $o.file) }}{{ end -}}
{{- else -}}
{{- fail (printf "models[%s].llamacpp.model %q is a path on this machine: in the cluster use 'smollm2', an absolute .gguf path on the cache volume, or a Hugging Face repo id with `file`" $m.name $o.model) -}}
{{- end -}}
{{- $args = concat $args (list "--ctx-size" (include "flotilla.num" $o.nCtx) "--parallel" (include "flotilla.num" $o.nParallel)) -}}
{{- if not (kindIs "invalid" $o.nThreads) }}{{ $args = concat $args (list "--threads" (include "flotilla.num" $o.nThreads)) }}{{ end -}}
{{- if $o.chatFormat }}{{ $args = concat $args (list "--chat-template" $o.chatFormat) }}{{ end -}}
{{- $args = append $args "--metrics" -}}
{{- concat $args $o.extraArgs | toJson -}}
{{- end -}}

{{/*
Security contexts by engine. The GPU images (vLLM, TGI, SGLang) run as root and write caches
under /root and the image's own directories, so they keep their user and a writable root
filesystem; everything else is locked down. llama.cpp and Flotilla's image run as non-root
with a read-only root filesystem. Users merge their own over these (models[].securityContext).
*/}}
{{- define "flotilla.engineSecurity" -}}
{{- if eq .engine "llamacpp" -}}
pod:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
container:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- else if eq .engine "sim" -}}
pod:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
container:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- else -}}
pod:
  seccompProfile: {type: RuntimeDefault}
container:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: false
  capabilities: {drop: [ALL]}
{{- end -}}
{{- end -}}
