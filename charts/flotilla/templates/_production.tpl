{{/*
Refuse to render, with MESSAGE. `fail` stops helm template and install; helm lint's lint mode
turns `fail` into a log line, so an unknown template named after the message then stops lint too
(its error carries the message).
*/}}
{{- define "flotilla.refuse" -}}
{{- fail . -}}
{{- include (printf "refused: %s" .) dict -}}
{{- end -}}

{{/*
Production behaviour of the Deployments: rollout strategy, progress deadline, topology spread,
graceful drains, termination grace and resources. Kept apart from the engine arguments
(_engines.tpl) so that each can change without touching the other.
*/}}

{{/* Seconds of the one timeout knob: the longest a request may take end to end. */}}
{{- define "flotilla.requestTimeout" -}}
{{- int .Values.gateway.requestTimeoutS -}}
{{- end -}}

{{/* A model's cache is a ReadWriteOnce claim: its pods must share a node and cannot overlap in a rollout. ctx: merged model */}}
{{- define "flotilla.rwoCache" -}}
{{- if and (not (has .engine (list "sim" "onnx"))) (eq .cache.type "pvc") (has .cache.accessMode (list "ReadWriteOnce" "ReadWriteOncePod")) -}}true{{- end -}}
{{- end -}}

{{/*
Rollout strategy: the model's `strategy`, else Recreate for a ReadWriteOnce cache claim, else a
rolling update that never surges (a surged GPU pod waits for a GPU that its predecessor holds).
ctx: dict "model" MERGED "given" USER_MODEL; returns the `strategy:` block.
*/}}
{{- define "flotilla.engineStrategy" -}}
{{- $s := dict "type" "RollingUpdate" "maxSurge" 0 "maxUnavailable" 1 -}}
{{- if .given.strategy -}}
{{- $s = .model.strategy -}}
{{- else if include "flotilla.rwoCache" .model -}}
{{- $s = dict "type" "Recreate" -}}
{{- end -}}
strategy:
  type: {{ $s.type }}
  {{- if eq $s.type "RollingUpdate" }}
  rollingUpdate:
    maxSurge: {{ $s.maxSurge }}
    maxUnavailable: {{ $s.maxUnavailable }}
  {{- end }}
{{- end -}}

{{/* Seconds a rollout may go without progress: the startup window (twice with a download) plus 10 minutes for scheduling and image pulls. ctx: merged model */}}
{{- define "flotilla.progressDeadline" -}}
{{- if not (kindIs "invalid" .progressDeadlineSeconds) -}}
{{- int .progressDeadlineSeconds -}}
{{- else -}}
{{- $startup := int .probes.startupTimeoutSeconds -}}
{{- add (ternary (mul 2 $startup) $startup .download.enabled) 600 -}}
{{- end -}}
{{- end -}}

{{/* Grace before SIGKILL: the drain delay plus the longest request, plus 30 s to exit. ctx: dict "root" $ "spec" MODEL_OR_GATEWAY */}}
{{- define "flotilla.terminationGrace" -}}
{{- if not (kindIs "invalid" .spec.terminationGracePeriodSeconds) -}}
{{- int .spec.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add (int .spec.drainDelaySeconds) (include "flotilla.requestTimeout" .root | int) 30 -}}
{{- end -}}
{{- end -}}

{{/* topologySpreadConstraints over this component's pods of the current ReplicaSet. ctx: dict "root" $ "spread" SPEC "labels" SELECTOR_CTX "default" BOOL */}}
{{- define "flotilla.topologySpread" -}}
{{- $enabled := .default -}}
{{- if not (kindIs "invalid" .spread.enabled) }}{{ $enabled = .spread.enabled }}{{ end -}}
{{- if $enabled -}}
topologySpreadConstraints:
  - maxSkew: {{ int .spread.maxSkew }}
    topologyKey: {{ .spread.topologyKey }}
    whenUnsatisfiable: {{ .spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "flotilla.selectorLabels" .labels | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
{{- end -}}
{{- end -}}

{{/*
The engine's preStop hook (files/drain.py, or drain.sh where the image has no Python): it waits
until the engine's own running and waiting gauges (its descriptor's load gauges) read 0.
ctx: dict "root" $ "model" MERGED "port" PORT
*/}}
{{- define "flotilla.engineLifecycle" -}}
{{- $container := include "flotilla.engineContainer" (dict "root" .root "engine" .model.engine) | fromYaml -}}
{{- $gauges := $container.loadGauges | default list -}}
{{- $args := concat (list (toString .port) (toString (int .model.drainDelaySeconds))) $gauges -}}
{{- $command := list "python3" "-c" (.root.Files.Get "files/drain.py") -}}
{{- if $container.drainShell -}}
{{- $command = list "sh" "-c" (.root.Files.Get "files/drain.sh") "drain" -}}
{{- end -}}
lifecycle:
  preStop:
    exec:
      command:
        {{- concat $command $args | toYaml | nindent 8 }}
{{- end -}}

{{/*
Bytes of a Kubernetes quantity ("16Gi", "500M", 1073741824). Only what memory uses: binary and
decimal suffixes.
*/}}
{{- define "flotilla.bytes" -}}
{{- $q := toString . -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $suffix := trimPrefix $number $q -}}
{{- $scale := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 -}}
{{- if or (not $number) (not (hasKey $scale $suffix)) -}}
{{- include "flotilla.refuse" (printf "cannot read %q as a memory quantity (use e.g. 512Mi, 16Gi)" $q) -}}
{{- end -}}
{{- mulf (float64 $number) (index $scale $suffix) | int64 -}}
{{- end -}}

{{/*
An engine container's resources: the model's `resources` as given, else the engine's defaults
(files/defaults.yaml) with the memory-backed /dev/shm added to the memory limit, since its pages
count against the container's memory (the request stays the expected use: shared memory is
rarely full). A given memory limit must leave room beyond shmSize. Plus the GPU limit.
ctx: dict "root" $ "model" MERGED "given" USER_MODEL "shm" BOOL "gpus" N
*/}}
{{- define "flotilla.engineResources" -}}
{{- $m := .model -}}
{{- $resources := dict -}}
{{- $shm := 0 -}}
{{- if .shm }}{{ $shm = include "flotilla.bytes" $m.shmSize | int64 }}{{ end -}}
{{- if .given.resources -}}
{{- $resources = deepCopy .given.resources -}}
{{- $limit := dig "limits" "memory" "" $resources -}}
{{- if and $shm $limit (le (include "flotilla.bytes" $limit | int64) $shm) -}}
{{- include "flotilla.refuse" (printf "models[%s].resources.limits.memory (%v) must be larger than shmSize (%s): the memory-backed /dev/shm counts against the container's memory limit" $m.name $limit $m.shmSize) -}}
{{- end -}}
{{- else -}}
{{- $defaults := .root.Files.Get "files/defaults.yaml" | fromYaml -}}
{{- $resources = deepCopy (index $defaults.resources.engines $m.engine) -}}
{{- $limits := $resources.limits -}}
{{- $bytes := add (include "flotilla.bytes" $limits.memory | int64) $shm -}}
{{- $_ := set $limits "memory" (printf "%dMi" (div $bytes 1048576)) -}}
{{- end -}}
{{- if gt (int .gpus) 0 -}}
{{- $limits := get $resources "limits" | default dict -}}
{{- $_ := set $limits $m.gpu.resourceName (int .gpus) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{/* resources of one of the chart's own containers: given, else the chart's default for KIND. ctx: dict "root" $ "given" RESOURCES "kind" KIND */}}
{{- define "flotilla.resources" -}}
{{- if .given -}}
{{- toYaml .given -}}
{{- else -}}
{{- $defaults := .root.Files.Get "files/defaults.yaml" | fromYaml -}}
{{- index $defaults.resources .kind | toYaml -}}
{{- end -}}
{{- end -}}

{{/*
The opt-in download init container (models[].download): the engine's own image fetches the model
at its revision into the cache volume, with the model's HF token, before the engine starts.
ctx: dict "root" $ "model" MERGED "image" IMAGE "security" CONTAINER_SECURITY "tokenEnv" LIST
*/}}
{{- define "flotilla.downloadContainer" -}}
{{- $m := .model -}}
{{- $options := index $m $m.engine -}}
{{- if not (has $m.engine (list "vllm" "sglang" "tgi")) -}}
{{- include "flotilla.refuse" (printf "models[%s].download: only vllm, sglang and tgi models are downloaded by the chart (llama.cpp fetches its GGUF itself)" $m.name) -}}
{{- end -}}
{{- if hasPrefix "/" $options.model -}}
{{- include "flotilla.refuse" (printf "models[%s].download: %s.model %q is a path, not a Hugging Face id" $m.name $m.engine $options.model) -}}
{{- end -}}
- name: download
  image: {{ .image }}
  imagePullPolicy: {{ $m.image.pullPolicy }}
  command:
    {{- concat (list "python3" "-c" (.root.Files.Get "files/download.py") $options.model ($options.revision | default "")) $m.download.allowPatterns | toYaml | nindent 4 }}
  env:
    - name: HF_HOME
      value: {{ $m.cache.mountPath | quote }}
    - name: HOME
      value: /tmp
    {{- with .tokenEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  resources:
    {{- include "flotilla.resources" (dict "root" .root "given" $m.download.resources "kind" "download") | nindent 4 }}
  securityContext:
    {{- toYaml .security | nindent 4 }}
  volumeMounts:
    - name: model-cache
      mountPath: {{ $m.cache.mountPath }}
    - name: download-tmp
      mountPath: /tmp
{{- end -}}

{{/* The RabbitMQ management API KEDA reads queue lengths from. ctx: dict "root" $ "trigger" RABBITMQ_TRIGGER */}}
{{- define "flotilla.rabbitmqManagementUrl" -}}
{{- if .trigger.managementUrl -}}
{{- .trigger.managementUrl -}}
{{- else if eq .root.Values.rabbitmq.type "internal" -}}
{{- printf "http://%s.%s.svc.%s:15672/" (include "flotilla.rabbitmqClusterName" .root) .root.Release.Namespace .root.Values.global.clusterDomain -}}
{{- else -}}
{{- include "flotilla.refuse" "autoscaling.rabbitmq needs managementUrl (http://HOST:15672/VHOST) unless rabbitmq.type is internal" -}}
{{- end -}}
{{- end -}}

{{/* Prefix of the dispatcher's RabbitMQ queues (<prefix>.sched.<model>): gateway.dispatcher.prefix,
else the release's name, so several releases may share one broker. ctx: $ */}}
{{- define "flotilla.dispatcherPrefix" -}}
{{- dig "dispatcher" "prefix" (include "flotilla.fullname" .) .Values.gateway -}}
{{- end -}}
