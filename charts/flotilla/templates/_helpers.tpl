{{/*
Names. The release's objects share one prefix; a model's objects are "<prefix>-<model>".
The prefix is cut to 22 characters so that prefix + "-" + a 40-character model name fits the
63-character limit of a Service name.
*/}}
{{- define "flotilla.fullname" -}}
{{- if contains "flotilla" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-flotilla" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flotilla.prefix" -}}
{{- include "flotilla.fullname" . | trunc 22 | trimSuffix "-" -}}
{{- end -}}

{{/* ctx: dict "root" $ "name" MODEL_NAME */}}
{{- define "flotilla.modelFullname" -}}
{{- printf "%s-%s" (include "flotilla.prefix" .root) .name -}}
{{- end -}}

{{- define "flotilla.gatewaySecretName" -}}
{{- include "flotilla.fullname" . -}}
{{- end -}}

{{- define "flotilla.tokensSecretName" -}}
{{- .Values.gateway.tokensSecret | default (include "flotilla.fullname" .) -}}
{{- end -}}

{{- define "flotilla.postgresClusterName" -}}
{{- printf "%s-tokendb" (include "flotilla.prefix" .) -}}
{{- end -}}

{{- define "flotilla.rabbitmqClusterName" -}}
{{- printf "%s-broker" (include "flotilla.prefix" .) -}}
{{- end -}}

{{/* Environment variable holding the i-th gateway token (names may hold '.' and '-'). */}}
{{- define "flotilla.tokenEnv" -}}
{{- printf "FLOTILLA_TOKEN_%d" (int .) -}}
{{- end -}}

{{/*
Labels. ctx: dict "root" $ "component" NAME ["model" MODEL_NAME] ["role" prefill|decode]
*/}}
{{- define "flotilla.selectorLabels" -}}
app.kubernetes.io/name: flotilla
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .model }}
flotilla/model: {{ . }}
{{- end }}
{{- with .role }}
flotilla/role: {{ . }}
{{- end }}
{{- end -}}

{{- define "flotilla.labels" -}}
{{ include "flotilla.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: flotilla
{{- end -}}

{{/*
Numbers: Helm reads every number of a values file as a float64 and would print 1000000 as
"1e+06". Whole numbers print as integers, others as Go prints them (flotilla.chart.flags agrees).
*/}}
{{- define "flotilla.num" -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/*
Merge user values over defaults, recursively. Unlike sprig's mergeOverwrite, an explicit false,
0 or "" (or null for a scalar) given by the user wins; a null where a section is expected keeps
the section's defaults. ctx: list DEFAULTS USER; returns YAML.
*/}}
{{- define "flotilla.merge" -}}
{{- $defaults := index . 0 | default dict -}}
{{- $user := index . 1 | default dict -}}
{{- $out := dict -}}
{{- range $key, $default := $defaults -}}
{{- if hasKey $user $key -}}
{{- $given := index $user $key -}}
{{- if and (kindIs "map" $default) (kindIs "map" $given) -}}
{{- $_ := set $out $key (include "flotilla.merge" (list $default $given) | fromYaml) -}}
{{- else if and (kindIs "map" $default) (kindIs "invalid" $given) -}}
{{- $_ := set $out $key $default -}}
{{- else -}}
{{- $_ := set $out $key $given -}}
{{- end -}}
{{- else -}}
{{- $_ := set $out $key $default -}}
{{- end -}}
{{- end -}}
{{- range $key, $given := $user -}}
{{- if not (hasKey $defaults $key) -}}
{{- $_ := set $out $key $given -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
A model with every default filled in (files/defaults.yaml is generated from the pydantic spec),
including its engine's options section. ctx: dict "root" $ "model" MODEL; returns YAML.
*/}}
{{- define "flotilla.model" -}}
{{- $defaults := .root.Files.Get "files/defaults.yaml" | fromYaml -}}
{{- $model := include "flotilla.merge" (list $defaults.model .model) | fromYaml -}}
{{- $engine := .model.engine -}}
{{- if hasKey $defaults.engines $engine -}}
{{- $given := dict -}}
{{- if and (hasKey .model $engine) (kindIs "map" (index .model $engine)) -}}
{{- $given = index .model $engine -}}
{{- end -}}
{{- $_ := set $model $engine (include "flotilla.merge" (list (index $defaults.engines $engine) $given) | fromYaml) -}}
{{- end -}}
{{- toYaml $model -}}
{{- end -}}

{{/*
What each engine kind runs in the cluster: image, port, command, health path, GPU option and
multi-node commands, generated into files/defaults.yaml from the engine descriptors
(flotilla/engines/<kind>.py). A null tag is the chart's appVersion (Flotilla's own image).
ctx: dict "root" $ "engine" KIND; returns YAML.
*/}}
{{- define "flotilla.engineContainer" -}}
{{- $all := (.root.Files.Get "files/defaults.yaml" | fromYaml).containers -}}
{{- $c := deepCopy (index $all .engine) -}}
{{- if kindIs "invalid" $c.tag }}{{ $_ := set $c "tag" .root.Chart.AppVersion }}{{ end -}}
{{- toYaml $c -}}
{{- end -}}

{{/*
An image reference. global.imageRegistry replaces the image's own registry host (the first path
part when it holds a '.' or ':' or is localhost) or prefixes a Docker Hub name.
ctx: dict "root" $ "repository" R "tag" T
*/}}
{{- define "flotilla.image" -}}
{{- $repository := .repository -}}
{{- $registry := .root.Values.global.imageRegistry -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repository -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repository = join "/" (rest $parts) -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository -}}
{{- end -}}
{{- printf "%s:%s" $repository (toString .tag) -}}
{{- end -}}

{{/* The gateway's image (also the sim engine's, the helm test's and the benchmark Job's). */}}
{{- define "flotilla.gatewayImage" -}}
{{- $sim := include "flotilla.engineContainer" (dict "root" . "engine" "sim") | fromYaml -}}
{{- $image := .Values.gateway.image -}}
{{- include "flotilla.image" (dict "root" . "repository" ($image.repository | default $sim.repository) "tag" ($image.tag | default $sim.tag)) -}}
{{- end -}}

{{- define "flotilla.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
GPUs per pod: gpu.count, else the engine's GPU option (tensorParallelSize, numShard) with
parallelism.tensor in its place when given, times the pipeline stages, split over the nodes.
ctx: dict "root" $ "model" MERGED_MODEL
*/}}
{{- define "flotilla.gpuCount" -}}
{{- $m := .model -}}
{{- $c := include "flotilla.engineContainer" (dict "root" .root "engine" $m.engine) | fromYaml -}}
{{- if not (kindIs "invalid" $m.gpu.count) -}}
{{- int64 $m.gpu.count -}}
{{- else if $c.gpuOption -}}
{{- $tp := index (index $m $m.engine) $c.gpuOption -}}
{{- if not (kindIs "invalid" $m.parallelism.tensor) }}{{ $tp = $m.parallelism.tensor }}{{ end -}}
{{- div (mul (int64 $tp) (int64 $m.parallelism.pipeline)) (int64 $m.parallelism.nodes) -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/* Where the gateway finds every replica of a unit (see flotilla.engineUnits): the A records of its headless Service. ctx: dict "root" $ "unit" UNIT */}}
{{- define "flotilla.endpointFlag" -}}
{{- $container := include "flotilla.engineContainer" (dict "root" .root "engine" .unit.model.engine) | fromYaml -}}
{{- printf "%s=dns+http://%s.%s.svc.%s:%d" .unit.pool .unit.name .root.Release.Namespace .root.Values.global.clusterDomain (int $container.port) -}}
{{- end -}}

{{- define "flotilla.gatewayUrl" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "flotilla.fullname" .) .Release.Namespace .Values.global.clusterDomain (int .Values.gateway.service.port) -}}
{{- end -}}

{{/*
A merged model's maxConcurrency: its own, else what its engine serves at once (the engine
section's option, else the engine's number), as the gateway computes it (files/defaults.yaml,
generated from the engine descriptors). ctx: dict "root" $ "model" MERGED_MODEL
*/}}
{{- define "flotilla.maxConcurrency" -}}
{{- $m := .model -}}
{{- if $m.maxConcurrency -}}
{{- int $m.maxConcurrency -}}
{{- else -}}
{{- $rule := index (.root.Files.Get "files/defaults.yaml" | fromYaml).concurrency $m.engine -}}
{{- $options := index $m $m.engine | default dict -}}
{{- $given := and $rule.option (index $options $rule.option) -}}
{{- int ($given | default $rule.default) -}}
{{- end -}}
{{- end -}}
