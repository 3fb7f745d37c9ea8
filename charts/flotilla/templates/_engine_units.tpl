{{/*
The engine workloads of the release, one "unit" per Deployment (or LeaderWorkerSet) and Service:
a model is one unit; a disaggregated model (roles) is two, prefill and decode, each with its own
replicas, GPUs, resources and arguments; a multi-node model (parallelism.nodes > 1) is one unit
rendered as a LeaderWorkerSet. Each unit: given (the user's model), model (merged, with the
role's overrides), name (Deployment and Service), role, pool (the gateway's --endpoint name),
multinode (bool).
ctx: dict "root" $ ; returns a YAML list.
*/}}
{{- define "flotilla.engineUnits" -}}
{{- $root := .root -}}
{{- $units := list -}}
{{- range $given := $root.Values.models -}}
{{- if ne $given.engine "external" -}}
{{- $m := include "flotilla.model" (dict "root" $root "model" $given) | fromYaml -}}
{{- $base := include "flotilla.modelFullname" (dict "root" $root "name" $m.name) -}}
{{- $multinode := gt (int64 $m.parallelism.nodes) 1 -}}
{{- if kindIs "map" (index $given "roles") -}}
{{- range $role := list "decode" "prefill" -}}
{{- $r := index $m.roles $role -}}
{{- $unit := deepCopy $m -}}
{{- $_ := set $unit "replicas" $r.replicas -}}
{{- $_ := set $unit "gpu" (include "flotilla.merge" (list $m.gpu $r.gpu) | fromYaml) -}}
{{- if $r.resources }}{{ $_ := set $unit "resources" $r.resources }}{{ end -}}
{{- $name := $base -}}
{{- $pool := $m.name -}}
{{- if eq $role "prefill" -}}
{{- $name = printf "%s-prefill" ($base | trunc 55 | trimSuffix "-") -}}
{{- $pool = printf "%s@prefill" $m.name -}}
{{- end -}}
{{- $units = append $units (dict "given" $given "model" $unit "name" $name "role" $role "pool" $pool "multinode" false) -}}
{{- end -}}
{{- else -}}
{{- $units = append $units (dict "given" $given "model" $m "name" $base "role" "" "pool" $m.name "multinode" $multinode) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $units -}}
{{- end -}}

{{/* Config files of a unit's engine (extraConfig): the role's own, else the model's. ctx: a unit; returns YAML or "" */}}
{{- define "flotilla.unitExtraConfig" -}}
{{- $cfg := .model.extraConfig -}}
{{- if .role }}{{ $own := (index .model.roles .role).extraConfig }}{{ if and $own (or $own.inline (dig "configMapRef" "name" "" $own)) }}{{ $cfg = $own }}{{ end }}{{ end -}}
{{- if and $cfg $cfg.inline -}}
{{- toYaml (dict "path" $cfg.path "inline" $cfg.inline) -}}
{{- else if and $cfg (dig "configMapRef" "name" "" $cfg) -}}
{{- toYaml (dict "path" $cfg.path "configMapRef" $cfg.configMapRef) -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding a unit's config file: the user's, or the chart's for an inline config. ctx: dict "unit" U "config" C */}}
{{- define "flotilla.unitConfigMapName" -}}
{{- if .config.configMapRef }}{{ .config.configMapRef.name }}{{ else }}{{ printf "%s-config" (.unit.name | trunc 56 | trimSuffix "-") }}{{ end -}}
{{- end -}}

{{/* LoRA adapters vLLM loads from the Hugging Face hub (the others are paths already in the container). ctx: merged model; returns JSON */}}
{{- define "flotilla.hubLoras" -}}
{{- $out := list -}}
{{- if eq .engine "vllm" -}}
{{- range .loras }}{{ if not (hasPrefix "/" .source) }}{{ $out = append $out (dict "name" .name "source" .source "revision" (.revision | default "main")) }}{{ end }}{{ end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
An init container that downloads hub LoRA adapters, at their revision, to <cache>/loras/<name>
(vLLM's --lora-modules points there), with the engine's own image and its huggingface_hub.
ctx: dict "root" "model" "given" "name" "loras" "image" "securityContext"
*/}}
{{- define "flotilla.fetchLorasContainer" -}}
- name: fetch-loras
  image: {{ .image }}
  imagePullPolicy: {{ .model.image.pullPolicy }}
  command:
    - python3
    - -c
    - |
      import json, os
      from huggingface_hub import snapshot_download
      for adapter in json.loads(os.environ["FLOTILLA_LORAS"]):
          snapshot_download(adapter["source"], revision=adapter["revision"],
                            local_dir=os.path.join(os.environ["FLOTILLA_LORA_DIR"], adapter["name"]))
  env:
    - name: FLOTILLA_LORAS
      value: {{ toJson .loras | quote }}
    - name: FLOTILLA_LORA_DIR
      value: {{ printf "%s/loras" .model.cache.mountPath | quote }}
    - name: HF_HOME
      value: {{ .model.cache.mountPath | quote }}
    {{- if kindIs "map" (index .given "hfToken") }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ .model.hfToken.existingSecret | default (printf "%s-hf-token" (include "flotilla.modelFullname" (dict "root" .root "name" .model.name))) }}
          key: {{ .model.hfToken.secretKey }}
    {{- end }}
  securityContext:
    {{- toYaml .securityContext | nindent 4 }}
  # Fetching adapters is a download: sized like the model download's init container.
  resources:
    {{- include "flotilla.resources" (dict "root" .root "given" .model.download.resources "kind" "download") | nindent 4 }}
  volumeMounts:
    - name: model-cache
      mountPath: {{ .model.cache.mountPath }}
{{- end -}}

{{/* Pod-level settings shared by a LeaderWorkerSet's leader and workers. ctx: see engine-leaderworkerset.yaml */}}
{{- define "flotilla.lwsPodCommon" -}}
{{- $m := .m -}}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ int $m.terminationGracePeriodSeconds }}
{{- with $m.gpu.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $m.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- include "flotilla.imagePullSecrets" .root }}
securityContext:
  {{- toYaml .podSecurity | nindent 2 }}
{{- with $m.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: model-cache
    {{- if eq $m.cache.type "pvc" }}
    persistentVolumeClaim:
      claimName: {{ $m.cache.existingClaim | default (printf "%s-cache" .name) }}
    {{- else if eq $m.cache.type "hostPath" }}
    hostPath:
      path: {{ $m.cache.hostPath }}
      type: DirectoryOrCreate
    {{- else }}
    emptyDir:
      sizeLimit: {{ $m.cache.size }}
    {{- end }}
  {{- if $m.shmSize }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ $m.shmSize }}
  {{- end }}
  {{- if .config }}
  - name: engine-config
    configMap:
      name: {{ include "flotilla.unitConfigMapName" (dict "unit" .unit "config" .config) }}
      items:
        - key: {{ if .config.configMapRef }}{{ .config.configMapRef.key }}{{ else }}config.yaml{{ end }}
          path: {{ base .config.path }}
  {{- end }}
{{- end -}}

{{/* Container settings shared by a LeaderWorkerSet's leader and workers (env, resources, mounts). */}}
{{- define "flotilla.lwsContainerCommon" -}}
{{- $m := .m -}}
env:
  {{- with .engineEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  - name: HF_HOME
    value: {{ $m.cache.mountPath | quote }}
  {{- if kindIs "map" (index .given "hfToken") }}
  {{- $secretName := $m.hfToken.existingSecret | default (printf "%s-hf-token" .name) }}
  {{- range $var := list "HF_TOKEN" "HUGGING_FACE_HUB_TOKEN" }}
  - name: {{ $var }}
    valueFrom:
      secretKeyRef:
        name: {{ $secretName }}
        key: {{ $m.hfToken.secretKey }}
  {{- end }}
  {{- end }}
  {{- with $m.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .containerSecurity | nindent 2 }}
volumeMounts:
  - name: model-cache
    mountPath: {{ $m.cache.mountPath }}
  {{- if $m.shmSize }}
  - name: dshm
    mountPath: /dev/shm
  {{- end }}
  {{- if .config }}
  - name: engine-config
    mountPath: {{ dir .config.path }}
    readOnly: true
  {{- end }}
{{- end -}}
