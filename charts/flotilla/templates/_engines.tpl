{{/*
Engine arguments and environment are generated into _engine_args.tpl from the engine
descriptors. llama.cpp's `model` "smollm2" is the GGUF shipped in Flotilla's image, copied to
this path on the cache volume by an init container (flotilla/engines/llamacpp.py names the same path).
*/}}
{{- define "flotilla.llamacpp.smollm2Path" -}}
{{- printf "%s/flotilla/SmolLM2-135M-Instruct.Q4_1.gguf" .model.cache.mountPath -}}
{{- end -}}

{{/*
Security contexts by engine. The GPU images (vLLM, TGI, SGLang) run as root and write caches
under /root and the image's own directories, so they keep their user and a writable root
filesystem; everything else is locked down. llama.cpp, TEI (its one binary writes only to the
cache volume and /tmp) and Flotilla's image (sim, onnx) run as non-root with a read-only root
filesystem. Users merge their own over these (models[].securityContext).
*/}}
{{- define "flotilla.engineSecurity" -}}
{{- if has .engine (list "llamacpp" "tei") -}}
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
{{- else if has .engine (list "sim" "onnx") -}}
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
